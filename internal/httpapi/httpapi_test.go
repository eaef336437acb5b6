package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kvfleet/kvfleet/internal/httpapi"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/version"
)

// Small limits so that the edges are cheap to reach.
var testLimits = kv.Limits{MaxKeyBytes: 32, MaxValueBytes: 64}

const testMaxBody = 256

var fixedNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// fixture is one API replica over in-memory dependencies.
type fixture struct {
	handler  http.Handler
	store    *kvtest.MemoryStore
	cache    *kvtest.MemoryCache
	pub      *kvtest.RecordingPublisher
	reg      *prometheus.Registry
	ready    *httpapi.Readiness
	consumed int
}

// deps sets what the health checks see.
type deps struct {
	cachePing, storePing error
	brokerDown           bool
}

func newFixture(t *testing.T, d deps) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := &fixture{
		store: kvtest.NewMemoryStore(),
		cache: kvtest.NewMemoryCache(),
		pub:   &kvtest.RecordingPublisher{},
		reg:   reg,
		ready: &httpapi.Readiness{},
	}
	now := func() time.Time { return fixedNow }
	svc := kv.NewService(kv.ServiceConfig{
		Limits:      testLimits,
		Clock:       version.NewClock(7, now),
		Cache:       f.cache,
		Store:       f.store,
		Publisher:   f.pub,
		Now:         now,
		ReadTimeout: time.Second,
		Registerer:  reg,
	})
	f.handler = httpapi.New(httpapi.Config{
		KV:            svc,
		MaxBodyBytes:  testMaxBody,
		Cache:         kvtest.Pinger{Err: d.cachePing},
		Store:         kvtest.Pinger{Err: d.storePing},
		Broker:        kvtest.Broker{Up: !d.brokerDown},
		Readiness:     f.ready,
		HealthTimeout: time.Second,
		ServedBy:      "api-test",
		Now:           now,
		Logger:        slog.New(slog.DiscardHandler),
		Registerer:    reg,
	})
	return f
}

// noContentType asks do to send no Content-Type header at all.
const noContentType = "<none>"

type request struct {
	method      string
	target      string
	body        string
	contentType string // application/json for a PUT when empty
	chunked     bool   // hide the body's length, as a chunked upload does
	header      map[string]string
}

func (f *fixture) do(t *testing.T, r request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if r.body != "" || r.method == http.MethodPut {
		body = strings.NewReader(r.body)
		if r.chunked {
			// Not a *strings.Reader, so httptest leaves ContentLength at -1.
			body = io.MultiReader(body)
		}
	}
	target := r.target
	if target == "" {
		target = "/"
	}
	req := httptest.NewRequest(r.method, target, body)
	switch {
	case r.contentType == noContentType:
	case r.contentType != "":
		req.Header.Set("Content-Type", r.contentType)
	case r.method == http.MethodPut:
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) put(t *testing.T, key, value string) *httptest.ResponseRecorder {
	t.Helper()
	return f.do(t, request{method: http.MethodPut, body: putBody(t, key, value)})
}

func (f *fixture) get(t *testing.T, param, key string) *httptest.ResponseRecorder {
	t.Helper()
	return f.do(t, request{method: http.MethodGet, target: "/?" + url.Values{param: {key}}.Encode()})
}

func (f *fixture) del(t *testing.T, param, key string) *httptest.ResponseRecorder {
	t.Helper()
	return f.do(t, request{method: http.MethodDelete, target: "/?" + url.Values{param: {key}}.Encode()})
}

// applyToStore does the database half of what a consumer does with the
// writes published since the last call; the cache is left as it is, as if
// the consumer's cache update had not happened yet.
func (f *fixture) applyToStore(t *testing.T) []kv.Item {
	t.Helper()
	writes := f.pub.Writes()[f.consumed:]
	f.consumed += len(writes)
	items := make([]kv.Item, len(writes))
	for i, w := range writes {
		items[i] = w.Item()
	}
	applied, err := f.store.Apply(t.Context(), items)
	if err != nil {
		t.Fatalf("store.Apply: %v", err)
	}
	var written []kv.Item
	for i, ok := range applied {
		if ok {
			written = append(written, items[i])
		}
	}
	return written
}

// consume does all a consumer does: apply to the database, then update
// the cache with what was applied.
func (f *fixture) consume(t *testing.T) {
	t.Helper()
	if err := f.cache.Update(t.Context(), f.applyToStore(t)); err != nil {
		t.Fatalf("cache.Update: %v", err)
	}
}

func (f *fixture) assertNothingPublished(t *testing.T) {
	t.Helper()
	if w := f.pub.Writes(); len(w) != 0 {
		t.Errorf("publisher recorded %d write(s), want none: %+v", len(w), w)
	}
}

func putBody(t *testing.T, key, value string) string {
	t.Helper()
	b, err := json.Marshal(struct {
		Key   string `json:"key_name"`
		Value string `json:"key_value"`
	}{key, value})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type queuedBody struct {
	Message    string `json:"message"`
	StatusCode int    `json:"status_code"`
	KeyName    string `json:"key_name"`
	Version    string `json:"version"`
}

type getBody struct {
	KeyName string `json:"key_name"`
	Value   string `json:"value"`
	Source  string `json:"source"`
	Version string `json:"version"`
}

type errorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

type healthBody struct {
	Status    string `json:"status"`
	Redis     string `json:"redis"`
	Database  string `json:"database"`
	RabbitMQ  string `json:"rabbitmq"`
	Timestamp string `json:"timestamp"`
}

// decodeStrict checks that the response is JSON of exactly the shape of v.
func decodeStrict(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	ct := rec.Header().Get("Content-Type")
	if media, _, err := mime.ParseMediaType(ct); err != nil || media != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %q does not decode into %T: %v", rec.Body.String(), v, err)
	}
	if dec.More() {
		t.Errorf("body %q has data after the JSON value", rec.Body.String())
	}
}

// assertError checks one error response: status, the one error shape,
// the code, and no sign of success.
func assertError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) errorBody {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d (body %s)", rec.Code, status, rec.Body.String())
	}
	var body errorBody
	decodeStrict(t, rec, &body)
	if body.Code != code {
		t.Errorf("code = %q, want %q (detail %q)", body.Code, code, body.Detail)
	}
	if body.Detail == "" {
		t.Errorf("detail is empty")
	}
	if etag := rec.Header().Get("ETag"); etag != "" {
		t.Errorf("error response carries ETag %q", etag)
	}
	if got := rec.Header().Get("Retry-After"); status == http.StatusServiceUnavailable && got == "" {
		t.Errorf("503 without Retry-After")
	}
	return body
}

func assertQueued(t *testing.T, rec *httptest.ResponseRecorder, message, key string) queuedBody {
	t.Helper()
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202 (body %s)", rec.Code, rec.Body.String())
	}
	var body queuedBody
	decodeStrict(t, rec, &body)
	if body.Message != message || body.StatusCode != http.StatusAccepted || body.KeyName != key {
		t.Errorf("body = %+v, want message %q, status_code 202, key_name %q", body, message, key)
	}
	if _, err := version.Parse(body.Version); err != nil {
		t.Errorf("version %q: %v", body.Version, err)
	}
	assertETag(t, rec, body.Version)
	return body
}

func assertFound(t *testing.T, rec *httptest.ResponseRecorder, key, value, source, ver string) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", rec.Code, rec.Body.String())
	}
	var body getBody
	decodeStrict(t, rec, &body)
	want := getBody{KeyName: key, Value: value, Source: source, Version: ver}
	if body != want {
		t.Errorf("body = %+q, want %+q", body, want)
	}
	assertETag(t, rec, ver)
}

func assertETag(t *testing.T, rec *httptest.ResponseRecorder, ver string) {
	t.Helper()
	if got, want := rec.Header().Get("ETag"), `"`+ver+`"`; got != want {
		t.Errorf("ETag = %q, want %q", got, want)
	}
}

func TestPutAccepts(t *testing.T) {
	t.Parallel()
	const padTo = testMaxBody
	exactBody := func() string {
		// A valid body of exactly the limit, padded with an ignored member.
		head := `{"key_name":"k","key_value":"v","pad":"`
		return head + strings.Repeat("x", padTo-len(head)-2) + `"}`
	}()
	tests := []struct {
		name        string
		body        string
		contentType string
		chunked     bool
		wantKey     string
		wantValue   string
	}{
		{name: "plain", body: `{"key_name":"k","key_value":"v"}`, wantKey: "k", wantValue: "v"},
		{name: "empty value", body: `{"key_name":"k","key_value":""}`, wantKey: "k", wantValue: ""},
		{name: "whitespace around", body: " \n{ \"key_name\" : \"k\" ,\t\"key_value\" : \"v\" }\r\n ", wantKey: "k", wantValue: "v"},
		{name: "members in either order", body: `{"key_value":"v","key_name":"k"}`, wantKey: "k", wantValue: "v"},
		{name: "unknown fields ignored", body: `{"key_name":"k","key_value":"v","ttl":5,"meta":{"a":[1,null,true]},"x":null}`, wantKey: "k", wantValue: "v"},
		{name: "escapes decoded", body: `{"key_name":"k\/\"\\","key_value":"a\nb\tc\r\b\f\u00e9\u0000"}`, wantKey: "k/\"\\", wantValue: "a\nb\tc\r\b\f\u00e9\x00"},
		{name: "surrogate pair", body: `{"key_name":"\ud83d\ude00","key_value":"\uD83D\uDE00!"}`, wantKey: "😀", wantValue: "😀!"},
		{name: "raw UTF-8", body: `{"key_name":"ключ","key_value":"значение 😀"}`, wantKey: "ключ", wantValue: "значение 😀"},
		{name: "key at the limit", body: putBody(t, strings.Repeat("k", 32), "v"), wantKey: strings.Repeat("k", 32), wantValue: "v"},
		{name: "multibyte key at the limit", body: putBody(t, strings.Repeat("ж", 16), "v"), wantKey: strings.Repeat("ж", 16), wantValue: "v"},
		{name: "value at the limit", body: putBody(t, "k", strings.Repeat("v", 64)), wantKey: "k", wantValue: strings.Repeat("v", 64)},
		{name: "body at the limit", body: exactBody, wantKey: "k", wantValue: "v"},
		{name: "body at the limit chunked", body: exactBody, chunked: true, wantKey: "k", wantValue: "v"},
		{name: "charset utf-8", body: `{"key_name":"k","key_value":"v"}`, contentType: "application/json; charset=utf-8", wantKey: "k", wantValue: "v"},
		{name: "charset UTF-8 quoted", body: `{"key_name":"k","key_value":"v"}`, contentType: `application/json;charset="UTF-8"`, wantKey: "k", wantValue: "v"},
		{name: "media type case-insensitive", body: `{"key_name":"k","key_value":"v"}`, contentType: "Application/JSON", wantKey: "k", wantValue: "v"},
	}
	if len(exactBody) != testMaxBody {
		t.Fatalf("exact body is %d bytes, want %d", len(exactBody), testMaxBody)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			rec := f.do(t, request{method: http.MethodPut, body: tt.body, contentType: tt.contentType, chunked: tt.chunked})
			got := assertQueued(t, rec, "Queued to add_key", tt.wantKey)
			writes := f.pub.Writes()
			if len(writes) != 1 {
				t.Fatalf("published %d writes, want 1", len(writes))
			}
			w := writes[0]
			if w.Op != kv.OpPut || w.Key != tt.wantKey || w.Value != tt.wantValue || w.Version.String() != got.Version {
				t.Errorf("published %v %q=%q version %s, want put %q=%q version %s",
					w.Op, w.Key, w.Value, w.Version, tt.wantKey, tt.wantValue, got.Version)
			}
		})
	}
}

func TestPutRefusesBadInput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("v", testMaxBody)
	tests := []struct {
		name        string
		body        string
		contentType string
		chunked     bool
		wantStatus  int
		wantCode    string
	}{
		// Syntax and shape.
		{name: "empty body", body: ``, wantStatus: 400, wantCode: "invalid_json"},
		{name: "malformed JSON", body: `{"key_name":"k","key_value":}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "unterminated", body: `{"key_name":"k","key_value":"v"`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "single quotes", body: `{'key_name':'k','key_value':'v'}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing comma", body: `{"key_name":"k","key_value":"v",}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing garbage", body: `{"key_name":"k","key_value":"v"} x`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "second object", body: `{"key_name":"k","key_value":"v"}{"key_name":"k2","key_value":"v2"}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "null body", body: `null`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "array body", body: `[{"key_name":"k","key_value":"v"}]`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "string body", body: `"k"`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "number body", body: `42`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "invalid escape", body: `{"key_name":"k\x","key_value":"v"}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "raw control character", body: "{\"key_name\":\"k\nk\",\"key_value\":\"v\"}", wantStatus: 400, wantCode: "invalid_json"},
		// key_name.
		{name: "missing key_name", body: `{"key_value":"v"}`, wantStatus: 400, wantCode: "missing_key"},
		{name: "empty key_name", body: `{"key_name":"","key_value":"v"}`, wantStatus: 400, wantCode: "missing_key"},
		{name: "key_name spelled differently", body: `{"KEY_NAME":"k","key_value":"v"}`, wantStatus: 400, wantCode: "missing_key"},
		{name: "key_name number", body: `{"key_name":1,"key_value":"v"}`, wantStatus: 400, wantCode: "invalid_name"},
		{name: "key_name null", body: `{"key_name":null,"key_value":"v"}`, wantStatus: 400, wantCode: "invalid_name"},
		{name: "key_name array", body: `{"key_name":["k"],"key_value":"v"}`, wantStatus: 400, wantCode: "invalid_name"},
		// key_value.
		{name: "missing key_value", body: `{"key_name":"k"}`, wantStatus: 400, wantCode: "missing_value"},
		{name: "key_value number", body: `{"key_name":"k","key_value":1}`, wantStatus: 400, wantCode: "invalid_value"},
		{name: "key_value float", body: `{"key_name":"k","key_value":-1.5e3}`, wantStatus: 400, wantCode: "invalid_value"},
		{name: "key_value null", body: `{"key_name":"k","key_value":null}`, wantStatus: 400, wantCode: "invalid_value"},
		{name: "key_value object", body: `{"key_name":"k","key_value":{"a":"b"}}`, wantStatus: 400, wantCode: "invalid_value"},
		{name: "key_value array", body: `{"key_name":"k","key_value":["v"]}`, wantStatus: 400, wantCode: "invalid_value"},
		{name: "key_value true", body: `{"key_name":"k","key_value":true}`, wantStatus: 400, wantCode: "invalid_value"},
		{name: "key_value false", body: `{"key_name":"k","key_value":false}`, wantStatus: 400, wantCode: "invalid_value"},
		// Content-Type.
		{name: "no Content-Type", body: `{"key_name":"k","key_value":"v"}`, contentType: noContentType, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "text/plain", body: `{"key_name":"k","key_value":"v"}`, contentType: "text/plain", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "form", body: `key_name=k&key_value=v`, contentType: "application/x-www-form-urlencoded", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "other charset", body: `{"key_name":"k","key_value":"v"}`, contentType: "application/json; charset=iso-8859-1", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "json suffix type", body: `{"key_name":"k","key_value":"v"}`, contentType: "application/merge-patch+json", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "malformed Content-Type", body: `{"key_name":"k","key_value":"v"}`, contentType: "application/", wantStatus: 415, wantCode: "unsupported_media_type"},
		// Sizes.
		{name: "body over the limit", body: putBody(t, "k", long), wantStatus: 413, wantCode: "body_too_large"},
		{name: "body over the limit chunked", body: putBody(t, "k", long), chunked: true, wantStatus: 413, wantCode: "body_too_large"},
		{name: "body one byte over the limit", body: `{"key_name":"k","key_value":"v","pad":"` + strings.Repeat("x", testMaxBody-len(`{"key_name":"k","key_value":"v","pad":"`)-2) + `"} `, wantStatus: 413, wantCode: "body_too_large"},
		{name: "body one byte over the limit chunked", body: `{"key_name":"k","key_value":"v","pad":"` + strings.Repeat("x", testMaxBody-len(`{"key_name":"k","key_value":"v","pad":"`)-2) + `"} `, chunked: true, wantStatus: 413, wantCode: "body_too_large"},
		{name: "key over the limit", body: putBody(t, strings.Repeat("k", 33), "v"), wantStatus: 400, wantCode: "key_too_long"},
		{name: "multibyte key over the limit", body: putBody(t, strings.Repeat("ж", 17), "v"), wantStatus: 400, wantCode: "key_too_long"},
		{name: "value over the limit", body: putBody(t, "k", strings.Repeat("v", 65)), wantStatus: 400, wantCode: "value_too_large"},
		{name: "escaped value over the limit", body: `{"key_name":"k","key_value":"` + strings.Repeat(`\u00e9`, 33) + `"}`, wantStatus: 400, wantCode: "value_too_large"},
		// UTF-8.
		{name: "raw invalid byte in key", body: "{\"key_name\":\"a\xffb\",\"key_value\":\"v\"}", wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "raw invalid byte in value", body: "{\"key_name\":\"k\",\"key_value\":\"a\xfe\"}", wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "overlong encoding in key", body: "{\"key_name\":\"\xc0\xaf\",\"key_value\":\"v\"}", wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "raw UTF-8 surrogate in value", body: "{\"key_name\":\"k\",\"key_value\":\"\xed\xa0\x80\"}", wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "truncated sequence in value", body: "{\"key_name\":\"k\",\"key_value\":\"\xe2\x82\"}", wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "escaped lone high surrogate in key", body: `{"key_name":"\ud800","key_value":"v"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "escaped lone low surrogate in key", body: `{"key_name":"a\udc00b","key_value":"v"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "escaped lone high surrogate in value", body: `{"key_name":"k","key_value":"\ud800"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "escaped lone low surrogate in value", body: `{"key_name":"k","key_value":"\udfff"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "high surrogate then letter", body: `{"key_name":"k","key_value":"\ud83dA"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "high surrogate then escaped letter", body: `{"key_name":"k","key_value":"\ud83d\u0041"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "high surrogate then high", body: `{"key_name":"k","key_value":"\ud83d\ud83d"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "surrogates reversed", body: `{"key_name":"k","key_value":"\ude00\ud83d"}`, wantStatus: 400, wantCode: "invalid_utf8"},
		{name: "high surrogate then other escape", body: `{"key_name":"k","key_value":"\ud83d\n"}`, wantStatus: 400, wantCode: "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			rec := f.do(t, request{method: http.MethodPut, body: tt.body, contentType: tt.contentType, chunked: tt.chunked})
			assertError(t, rec, tt.wantStatus, tt.wantCode)
			f.assertNothingPublished(t)
		})
	}
}

// TestBodyLimitOverTheWire sends over-limit bodies through a real server,
// with a declared length and chunked, as clients do.
func TestBodyLimitOverTheWire(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	big := putBody(t, "k", strings.Repeat("v", 4*testMaxBody))
	small := putBody(t, "k", "v")
	tests := []struct {
		name       string
		body       string
		chunked    bool
		wantStatus int
	}{
		{"declared length over", big, false, http.StatusRequestEntityTooLarge},
		{"chunked over", big, true, http.StatusRequestEntityTooLarge},
		{"declared length under", small, false, http.StatusAccepted},
		{"chunked under", small, true, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tt.chunked && req.ContentLength != -1 && req.ContentLength != 0 {
				t.Fatalf("request has ContentLength %d; want it unknown", req.ContentLength)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, b)
			}
			if tt.wantStatus >= 400 {
				var e errorBody
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != "body_too_large" {
					t.Errorf("body: %+v, %v; want code body_too_large", e, err)
				}
			}
		})
	}
	// Only the two small bodies were published.
	if n := len(f.pub.Writes()); n != 2 {
		t.Errorf("published %d writes, want 2", n)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	valid := `{"key_name":"k","key_value":"v"}`
	for _, method := range []string{http.MethodPost, http.MethodPatch, http.MethodOptions, http.MethodHead, "PROPFIND"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			rec := f.do(t, request{method: method, target: "/?key=k", body: valid, contentType: "application/json"})
			assertError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
			allow := strings.Split(rec.Header().Get("Allow"), ",")
			for i := range allow {
				allow[i] = strings.TrimSpace(allow[i])
			}
			slices.Sort(allow)
			if want := []string{"DELETE", "GET", "PUT"}; !slices.Equal(allow, want) {
				t.Errorf("Allow = %q, want GET, PUT, DELETE", rec.Header().Get("Allow"))
			}
			f.assertNothingPublished(t)
		})
	}
}

func TestNoRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	for _, target := range []string{"/nope", "/key/k", "//"} {
		rec := f.do(t, request{method: http.MethodGet, target: target})
		assertError(t, rec, http.StatusNotFound, "no_route")
	}
}

func TestQueryKeyRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		query    string
		wantCode string
	}{
		{"no query", "", "missing_key"},
		{"other parameter only", "?keys=k", "missing_key"},
		{"empty key", "?key=", "missing_key"},
		{"empty key_name", "?key_name=", "missing_key"},
		{"key and key_name differ", "?key=a&key_name=b", "ambiguous_key"},
		{"key twice, different", "?key=a&key=b", "ambiguous_key"},
		{"key_name twice, different", "?key_name=a&key_name=b", "ambiguous_key"},
		{"malformed escape", "?key=%zz", "invalid_query"},
		{"truncated escape", "?key=a%2", "invalid_query"},
		{"semicolon separator", "?key=a;b", "invalid_query"},
		{"invalid UTF-8", "?key=%ff", "invalid_utf8"},
		{"escaped UTF-8 surrogate", "?key=%ed%a0%80", "invalid_utf8"},
		{"key over the limit", "?" + url.Values{"key": {strings.Repeat("k", 33)}}.Encode(), "key_too_long"},
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		for _, tt := range tests {
			t.Run(method+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, deps{})
				rec := f.do(t, request{method: method, target: "/" + tt.query})
				assertError(t, rec, http.StatusBadRequest, tt.wantCode)
				f.assertNothingPublished(t)
			})
		}
	}
}

func TestGetNeverWritten(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	for _, param := range []string{"key", "key_name"} {
		rec := f.get(t, param, "never-written")
		body := assertError(t, rec, http.StatusNotFound, "not_found")
		if body.Detail != "Key not found" {
			t.Errorf("detail = %q, want %q", body.Detail, "Key not found")
		}
	}
}

// roundTripKeys are keys that a URL or JSON layer could mangle.
var roundTripKeys = []string{
	"plain", "a/b", "a%2Fb", "a b", "ключ", "😀", "?", "&", "#", "+", "=",
	"\x00", "a\x00b", "a;b", "%", "%zz", "%25", " ", " lead", "trail ", "a\tb\nc",
	"k?key=x&key_name=y#f", "..", "/", "\\", `"q"`, "\u2028", "<&>", "é\u0301",
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, key := range roundTripKeys {
		t.Run(url.PathEscape(key), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			value := "value of " + key

			put := assertQueued(t, f.put(t, key, value), "Queued to add_key", key)
			writes := f.pub.Writes()
			if len(writes) != 1 || writes[0].Op != kv.OpPut || writes[0].Key != key || writes[0].Value != value {
				t.Fatalf("published %+v, want one put of %q=%q", writes, key, value)
			}

			// Not applied yet: the write is only queued.
			assertError(t, f.get(t, "key", key), http.StatusNotFound, "not_found")
			f.cache.Delete(key) // forget the cached "not found", as its short TTL would

			f.applyToStore(t)
			assertFound(t, f.get(t, "key", key), key, value, "database", put.Version)
			assertFound(t, f.get(t, "key_name", key), key, value, "redis", put.Version)

			del := assertQueued(t, f.del(t, "key_name", key), "Queued to del_key", key)
			if del.Version <= put.Version {
				t.Errorf("delete version %s is not above put version %s", del.Version, put.Version)
			}
			writes = f.pub.Writes()
			if last := writes[len(writes)-1]; last.Op != kv.OpDelete || last.Key != key || last.Version.String() != del.Version {
				t.Errorf("published %+v, want a delete of %q at %s", last, key, del.Version)
			}
			f.consume(t)
			assertError(t, f.get(t, "key", key), http.StatusNotFound, "not_found")
		})
	}
}

// TestRoundTripOverTheWire runs keys through a real server and a standard
// client, so that the query string is encoded and parsed as in production.
func TestRoundTripOverTheWire(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	call := func(t *testing.T, method, query, body string) (int, []byte) {
		t.Helper()
		u := srv.URL + "/"
		if query != "" {
			u += "?" + query
		}
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, u, r)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	for _, key := range roundTripKeys {
		value := "v:" + key
		if code, b := call(t, http.MethodPut, "", putBody(t, key, value)); code != http.StatusAccepted {
			t.Fatalf("PUT %q: status %d %s", key, code, b)
		}
	}
	f.applyToStore(t)
	for _, key := range roundTripKeys {
		code, b := call(t, http.MethodGet, url.Values{"key": {key}}.Encode(), "")
		var got getBody
		if err := json.Unmarshal(b, &got); code != http.StatusOK || err != nil || got.KeyName != key || got.Value != "v:"+key {
			t.Errorf("GET %q: status %d, body %s", key, code, b)
		}
	}
}

func TestValuesRoundTrip(t *testing.T) {
	t.Parallel()
	values := []string{"", " ", "\x00", "a\x00b", "line\nbreak", `{"json":"inside"}`, "<script>&amp;</script>",
		"\u2028\u2029", "😀", "\ufeffbom", "\\u0000", strings.Repeat("é", 32)}
	for i, value := range values {
		t.Run(url.PathEscape(value), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			key := "k" + string(rune('a'+i))
			put := assertQueued(t, f.put(t, key, value), "Queued to add_key", key)
			f.applyToStore(t)
			assertFound(t, f.get(t, "key", key), key, value, "database", put.Version)
			assertFound(t, f.get(t, "key", key), key, value, "redis", put.Version)
		})
	}
}

func TestOverwriteReadsLatest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	first := assertQueued(t, f.put(t, "k", "one"), "Queued to add_key", "k")
	f.consume(t)
	assertFound(t, f.get(t, "key", "k"), "k", "one", "redis", first.Version)
	second := assertQueued(t, f.put(t, "k", "two"), "Queued to add_key", "k")
	f.consume(t)
	assertFound(t, f.get(t, "key", "k"), "k", "two", "redis", second.Version)
	f.cache.Delete("k")
	assertFound(t, f.get(t, "key", "k"), "k", "two", "database", second.Version)
}

func TestDeleteOfUncachedKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	assertQueued(t, f.put(t, "k", "v"), "Queued to add_key", "k")
	f.applyToStore(t)
	assertQueued(t, f.del(t, "key", "k"), "Queued to del_key", "k")
	f.applyToStore(t)
	assertError(t, f.get(t, "key", "k"), http.StatusNotFound, "not_found")
}

func TestVersionsIncrease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	var prev version.Version
	for i, key := range []string{"a", "b", "a", "a", "c", "b"} {
		var rec *httptest.ResponseRecorder
		message := "Queued to add_key"
		if i == 4 {
			rec, message = f.del(t, "key_name", key), "Queued to del_key"
		} else {
			rec = f.put(t, key, "v")
		}
		body := assertQueued(t, rec, message, key)
		v, err := version.Parse(body.Version)
		if err != nil {
			t.Fatal(err)
		}
		if !prev.Less(v) {
			t.Errorf("write %d: version %s is not above the previous %s", i, v, prev)
		}
		if got := f.pub.Writes()[i].Version; got != v {
			t.Errorf("write %d: published version %s, answered %s", i, got, v)
		}
		prev = v
	}
}

func TestPublisherFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  request
	}{
		{"put", request{method: http.MethodPut, body: `{"key_name":"k","key_value":"v"}`}},
		{"delete", request{method: http.MethodDelete, target: "/?key_name=k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			f.pub.Err = errors.New("broker nacked the message")
			rec := f.do(t, tt.req)
			body := assertError(t, rec, http.StatusServiceUnavailable, "queue_unavailable")
			if strings.Contains(body.Detail, "nacked") {
				t.Errorf("detail leaks the internal error: %q", body.Detail)
			}
			f.assertNothingPublished(t)

			// Healed: the same request is now accepted.
			f.pub.Err = nil
			if rec := f.do(t, tt.req); rec.Code != http.StatusAccepted {
				t.Errorf("after the broker recovered: status %d, want 202", rec.Code)
			}
		})
	}
}

// A broker that refuses a write because the queue is at its byte bound is
// a 503 the client can act on: queue_full, with a longer Retry-After than
// a replica's overload.
func TestQueueFullIsA503WithRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	f.pub.Err = fmt.Errorf("queue: publish: %w", kv.ErrQueueFull)
	rec := f.do(t, request{method: http.MethodPut, body: `{"key_name":"k","key_value":"v"}`})
	assertError(t, rec, http.StatusServiceUnavailable, "queue_full")
	if got := rec.Header().Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	f.assertNothingPublished(t)
}

func TestStoreFailureOnCacheMiss(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	f.store.SetErr(kvtest.ErrDown)
	body := assertError(t, f.get(t, "key", "k"), http.StatusServiceUnavailable, "database_unavailable")
	if strings.Contains(body.Detail, "kvtest") {
		t.Errorf("detail leaks the internal error: %q", body.Detail)
	}
}

func TestCacheHitSurvivesStoreFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	put := assertQueued(t, f.put(t, "k", "v"), "Queued to add_key", "k")
	f.consume(t)
	f.store.SetErr(kvtest.ErrDown)
	assertFound(t, f.get(t, "key", "k"), "k", "v", "redis", put.Version)
}

func TestCacheFailureFallsBackToDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	put := assertQueued(t, f.put(t, "k", "v"), "Queued to add_key", "k")
	f.applyToStore(t)
	f.cache.SetErr(kvtest.ErrDown)
	for range 2 {
		assertFound(t, f.get(t, "key", "k"), "k", "v", "database", put.Version)
	}
	assertError(t, f.get(t, "key", "missing"), http.StatusNotFound, "not_found")
}

func TestHealth(t *testing.T) {
	t.Parallel()
	down := errors.New("down")
	tests := []struct {
		name       string
		deps       deps
		wantStatus int
		want       healthBody
	}{
		{"all ok", deps{}, 200, healthBody{Status: "ok", Redis: "ok", Database: "ok", RabbitMQ: "ok"}},
		{"cache error", deps{cachePing: down}, 200, healthBody{Status: "degraded", Redis: "error", Database: "ok", RabbitMQ: "ok"}},
		{"database error", deps{storePing: down}, 200, healthBody{Status: "degraded", Redis: "ok", Database: "error", RabbitMQ: "ok"}},
		{"broker down", deps{brokerDown: true}, 200, healthBody{Status: "degraded", Redis: "ok", Database: "ok", RabbitMQ: "error"}},
		{"cache and database error", deps{cachePing: down, storePing: down}, 200, healthBody{Status: "degraded", Redis: "error", Database: "error", RabbitMQ: "ok"}},
		{"database and broker down", deps{storePing: down, brokerDown: true}, 503, healthBody{Status: "down", Redis: "ok", Database: "error", RabbitMQ: "error"}},
		{"everything down", deps{cachePing: down, storePing: down, brokerDown: true}, 503, healthBody{Status: "down", Redis: "error", Database: "error", RabbitMQ: "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.deps)
			rec := f.do(t, request{method: http.MethodGet, target: "/health"})
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			var got healthBody
			decodeStrict(t, rec, &got)
			ts, err := time.Parse(time.RFC3339, got.Timestamp)
			if err != nil || !ts.Equal(fixedNow) {
				t.Errorf("timestamp = %q, want %s in RFC 3339", got.Timestamp, fixedNow.Format(time.RFC3339))
			}
			got.Timestamp = ""
			if got != tt.want {
				t.Errorf("body = %+v, want %+v", got, tt.want)
			}

			// Liveness ignores the dependencies.
			if rec := f.do(t, request{method: http.MethodGet, target: "/healthz"}); rec.Code != http.StatusOK {
				t.Errorf("/healthz status = %d, want 200", rec.Code)
			}
		})
	}
}

func TestReadyzFollowsReadiness(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	steps := []struct {
		set        *bool
		wantStatus int
	}{
		{nil, http.StatusServiceUnavailable}, // starting
		{ptr(true), http.StatusOK},
		{ptr(false), http.StatusServiceUnavailable}, // draining
		{ptr(true), http.StatusOK},
	}
	for i, s := range steps {
		if s.set != nil {
			f.ready.SetReady(*s.set)
		}
		rec := f.do(t, request{method: http.MethodGet, target: "/readyz"})
		if rec.Code != s.wantStatus {
			t.Errorf("step %d: /readyz status = %d, want %d", i, rec.Code, s.wantStatus)
		}
		if ct, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); ct != "application/json" {
			t.Errorf("step %d: Content-Type %q", i, rec.Header().Get("Content-Type"))
		}
		if rec := f.do(t, request{method: http.MethodGet, target: "/healthz"}); rec.Code != http.StatusOK {
			t.Errorf("step %d: /healthz status = %d, want 200", i, rec.Code)
		}
	}
}

func ptr[T any](v T) *T { return &v }

var generatedID = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestRequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sent   *string
		target string
		echo   bool
	}{
		{name: "echoed", sent: ptr("req-123"), echo: true},
		{name: "echoed on an error", sent: ptr("req-456"), target: "/?key=", echo: true},
		{name: "longest echoed", sent: ptr(strings.Repeat("r", 128)), echo: true},
		{name: "generated when absent"},
		{name: "generated on an error", target: "/"},
		{name: "empty replaced", sent: ptr("")},
		{name: "space replaced", sent: ptr("two words")},
		{name: "too long replaced", sent: ptr(strings.Repeat("r", 129))},
		{name: "non-ASCII replaced", sent: ptr("идентификатор")},
		{name: "control character replaced", sent: ptr("a\x7fb")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, deps{})
			target := tt.target
			if target == "" {
				target = "/?key=k"
			}
			r := request{method: http.MethodGet, target: target}
			if tt.sent != nil {
				r.header = map[string]string{"X-Request-ID": *tt.sent}
			}
			got := f.do(t, r).Header().Get("X-Request-ID")
			switch {
			case tt.echo && got != *tt.sent:
				t.Errorf("X-Request-ID = %q, want %q echoed", got, *tt.sent)
			case !tt.echo && !generatedID.MatchString(got):
				t.Errorf("X-Request-ID = %q, want a generated id", got)
			}
			if !tt.echo {
				again := f.do(t, r).Header().Get("X-Request-ID")
				if again == got {
					t.Errorf("two requests got the same generated id %q", got)
				}
			}
		})
	}
	f := newFixture(t, deps{})
	if got := f.do(t, request{method: http.MethodGet, target: "/healthz"}).Header().Get("X-Served-By"); got != "api-test" {
		t.Errorf("X-Served-By = %q, want api-test", got)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, deps{})
	const secretKey = "user-42-private"
	for range 3 {
		assertQueued(t, f.put(t, secretKey, "v"), "Queued to add_key", secretKey)
	}
	f.do(t, request{method: http.MethodPut, body: `{"key_name":""}`})
	f.get(t, "key", "never")
	f.del(t, "key", secretKey)
	f.do(t, request{method: http.MethodPost, target: "/"})
	f.do(t, request{method: http.MethodGet, target: "/health"})
	f.do(t, request{method: http.MethodGet, target: "/nope"})

	want := `
# HELP kvfleet_http_requests_total HTTP requests by route, method and status code.
# TYPE kvfleet_http_requests_total counter
kvfleet_http_requests_total{code="202",method="PUT",route="/"} 3
kvfleet_http_requests_total{code="400",method="PUT",route="/"} 1
kvfleet_http_requests_total{code="404",method="GET",route="/"} 1
kvfleet_http_requests_total{code="202",method="DELETE",route="/"} 1
kvfleet_http_requests_total{code="405",method="other",route="unmatched"} 1
kvfleet_http_requests_total{code="200",method="GET",route="/health"} 1
kvfleet_http_requests_total{code="404",method="GET",route="unmatched"} 1
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "kvfleet_http_requests_total"); err != nil {
		t.Error(err)
	}
	if got := counterValue(t, f.reg, "kvfleet_http_requests_total",
		map[string]string{"route": "/", "method": "PUT", "code": "202"}); got != 3 {
		t.Errorf("PUT 202 count = %v, want 3", got)
	}
	if n, err := testutil.GatherAndCount(f.reg, "kvfleet_http_request_duration_seconds"); err != nil || n != 6 {
		t.Errorf("latency series = %d (%v), want 6 (by route and method only)", n, err)
	}

	// Keys never become label values.
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), secretKey) {
					t.Errorf("%s has the key in label %s", mf.GetName(), l.GetName())
				}
			}
		}
	}
}

// counterValue reads one counter series from everything the registry
// gathers.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// The fleet's nginx forwards writes as POST with their real method in a
// header; the API must treat them exactly like the original PUT or DELETE,
// and a plain POST (or one naming another method) stays a 405.
func TestWriteMethodRestoredFromNginxHeader(t *testing.T) {
	cases := []struct {
		name, header, target, body string
		wantStatus                 int
		wantMessage                string
	}{
		{"put", "PUT", "/", `{"key_name":"k","key_value":"v"}`, http.StatusAccepted, "Queued to add_key"},
		{"delete", "DELETE", "/?key_name=k", "", http.StatusAccepted, "Queued to del_key"},
		{"no header", "", "/", `{"key_name":"k","key_value":"v"}`, http.StatusMethodNotAllowed, ""},
		{"other method", "PATCH", "/", `{"key_name":"k","key_value":"v"}`, http.StatusMethodNotAllowed, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, deps{})
			req := httptest.NewRequest(http.MethodPost, tc.target, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set(httpapi.WriteMethodHeader, tc.header)
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			published := len(f.pub.Writes())
			if tc.wantStatus == http.StatusAccepted {
				if published != 1 || !strings.Contains(rec.Body.String(), tc.wantMessage) {
					t.Fatalf("published %d writes, body %s", published, rec.Body)
				}
			} else if published != 0 {
				t.Fatalf("a refused request published %d writes", published)
			}
		})
	}
}
