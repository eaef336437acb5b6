package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// invalidCode returns the code of a *kv.InvalidError, or "" for nil, or
// fails the test for any other error (which would become a 500).
func invalidCode(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var invalid *kv.InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("error %v (%T) is not a *kv.InvalidError: a client mistake would become a 500", err, err)
	}
	if invalid.Code == "" || invalid.Message == "" {
		t.Fatalf("InvalidError %+v lacks a code or a message", invalid)
	}
	return invalid.Code
}

func TestDecodePut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantKey   string
		wantValue string
		wantCode  string
	}{
		{name: "plain", body: `{"key_name":"k","key_value":"v"}`, wantKey: "k", wantValue: "v"},
		{name: "empty value", body: `{"key_name":"k","key_value":""}`, wantKey: "k", wantValue: ""},
		{name: "whitespace", body: "\t{ \"key_name\" :\n\"k\" , \"key_value\" : \"v\" } \r\n", wantKey: "k", wantValue: "v"},
		{name: "unknown members ignored", body: `{"a":1,"key_name":"k","b":{"c":[true,null,"\ud800"]},"key_value":"v","d":"x"}`, wantKey: "k", wantValue: "v"},
		{name: "simple escapes", body: `{"key_name":"\"\\\/","key_value":"\b\f\n\r\t"}`, wantKey: `"\/`, wantValue: "\b\f\n\r\t"},
		{name: "unicode escapes", body: `{"key_name":"\u0041\u00e9\u4e2d","key_value":"\u0000\u001f\uFFFF"}`, wantKey: "Aé中", wantValue: "\x00\x1f\uffff"},
		{name: "surrogate pair", body: `{"key_name":"\ud83d\ude00","key_value":"x\uD83D\uDE00y"}`, wantKey: "😀", wantValue: "x😀y"},
		{name: "highest code point", body: `{"key_name":"\udbff\udfff","key_value":"v"}`, wantKey: "\U0010FFFF", wantValue: "v"},
		{name: "unknown member of every kind", body: `{"x":"\\\"}{","key_name":"k","y":[{"z":"]"},1e5,-0.5,false],"key_value":"v","n":null}`, wantKey: "k", wantValue: "v"},
		{name: "escaped member name", body: `{"key\u005fname":"k","key_value":"v"}`, wantKey: "k", wantValue: "v"},
		{name: "raw UTF-8", body: `{"key_name":"ключ","key_value":"😀"}`, wantKey: "ключ", wantValue: "😀"},
		{name: "raw U+FFFD kept", body: `{"key_name":"k","key_value":"` + "\uFFFD" + `"}`, wantKey: "k", wantValue: "\uFFFD"},
		{name: "escaped backslash before u", body: `{"key_name":"k","key_value":"\\ud800"}`, wantKey: "k", wantValue: `\ud800`},

		{name: "empty", body: ``, wantCode: "invalid_json"},
		{name: "whitespace only", body: " \n", wantCode: "invalid_json"},
		{name: "syntax error", body: `{"key_name":}`, wantCode: "invalid_json"},
		{name: "trailing data", body: `{"key_name":"k","key_value":"v"}x`, wantCode: "invalid_json"},
		{name: "two objects", body: `{"key_name":"k","key_value":"v"} {}`, wantCode: "invalid_json"},
		{name: "null", body: `null`, wantCode: "invalid_json"},
		{name: "array", body: `[]`, wantCode: "invalid_json"},
		{name: "string", body: `"x"`, wantCode: "invalid_json"},
		{name: "number", body: `1`, wantCode: "invalid_json"},
		{name: "bad escape", body: `{"key_name":"\q","key_value":"v"}`, wantCode: "invalid_json"},
		{name: "short unicode escape", body: `{"key_name":"\u12","key_value":"v"}`, wantCode: "invalid_json"},
		{name: "duplicate key_name", body: `{"key_name":"a","key_name":"b","key_value":"v"}`, wantCode: "duplicate_member"},
		{name: "duplicate key_value", body: `{"key_name":"k","key_value":"v","key_value":"w"}`, wantCode: "duplicate_member"},
		{name: "duplicate by escape", body: `{"key_name":"a","key\u005fname":"b","key_value":"v"}`, wantCode: "duplicate_member"},
		{name: "duplicate unknown members allowed", body: `{"x":1,"x":2,"key_name":"k","key_value":"v"}`, wantKey: "k", wantValue: "v"},
		{name: "missing key_name", body: `{"key_value":"v"}`, wantCode: "missing_key"},
		{name: "wrong case key_name", body: `{"Key_Name":"k","key_value":"v"}`, wantCode: "missing_key"},
		{name: "missing key_value", body: `{"key_name":"k"}`, wantCode: "missing_value"},
		{name: "key_name number", body: `{"key_name":7,"key_value":"v"}`, wantCode: "invalid_name"},
		{name: "key_name object", body: `{"key_name":{},"key_value":"v"}`, wantCode: "invalid_name"},
		{name: "key_value null", body: `{"key_name":"k","key_value":null}`, wantCode: "invalid_value"},
		{name: "key_value number", body: `{"key_name":"k","key_value":0}`, wantCode: "invalid_value"},
		{name: "key_value bool", body: `{"key_name":"k","key_value":true}`, wantCode: "invalid_value"},
		{name: "key_value array", body: `{"key_name":"k","key_value":[]}`, wantCode: "invalid_value"},
		{name: "key_value object", body: `{"key_name":"k","key_value":{}}`, wantCode: "invalid_value"},
		{name: "raw invalid UTF-8 in key", body: "{\"key_name\":\"\xff\",\"key_value\":\"v\"}", wantCode: "invalid_utf8"},
		{name: "raw invalid UTF-8 in value", body: "{\"key_name\":\"k\",\"key_value\":\"\xc3\"}", wantCode: "invalid_utf8"},
		{name: "raw invalid UTF-8 in ignored member", body: "{\"key_name\":\"k\",\"key_value\":\"v\",\"x\":\"\x80\"}", wantCode: "invalid_utf8"},
		{name: "lone high in key", body: `{"key_name":"\ud800","key_value":"v"}`, wantCode: "invalid_utf8"},
		{name: "lone low in key", body: `{"key_name":"\udc00","key_value":"v"}`, wantCode: "invalid_utf8"},
		{name: "lone high in value", body: `{"key_name":"k","key_value":"ab\uDBFF"}`, wantCode: "invalid_utf8"},
		{name: "lone low in value", body: `{"key_name":"k","key_value":"\uDFFFab"}`, wantCode: "invalid_utf8"},
		{name: "high then raw letter", body: `{"key_name":"k","key_value":"\ud83dabcdefg"}`, wantCode: "invalid_utf8"},
		{name: "high then BMP escape", body: `{"key_name":"k","key_value":"\ud83d\u00e9"}`, wantCode: "invalid_utf8"},
		{name: "high then high", body: `{"key_name":"k","key_value":"\ud83d\ud83d"}`, wantCode: "invalid_utf8"},
		{name: "high then escaped backslash", body: `{"key_name":"k","key_value":"\ud83d\\ude00"}`, wantCode: "invalid_utf8"},
		{name: "low then high", body: `{"key_name":"k","key_value":"\ude00\ud83d"}`, wantCode: "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodePut([]byte(tt.body))
			if code := invalidCode(t, err); code != tt.wantCode {
				t.Fatalf("decodePut(%q) error code %q (%v), want %q", tt.body, code, err, tt.wantCode)
			}
			if err == nil && (got.Key != tt.wantKey || got.Value != tt.wantValue) {
				t.Errorf("decodePut(%q) = %+q, want key %+q value %+q", tt.body, got, tt.wantKey, tt.wantValue)
			}
		})
	}
}

func TestUnquote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		want    string
		wantErr error
	}{
		{raw: `""`, want: ""},
		{raw: `"abc"`, want: "abc"},
		{raw: `"ключ 😀"`, want: "ключ 😀"},
		{raw: `"\""`, want: `"`},
		{raw: `"\\"`, want: `\`},
		{raw: `"\/"`, want: `/`},
		{raw: `"\b\f\n\r\t"`, want: "\b\f\n\r\t"},
		{raw: `"a\\nb"`, want: `a\nb`},
		{raw: `"\u0000"`, want: "\x00"},
		{raw: `"\u00e9\u00E9"`, want: "éé"},
		{raw: `"\u20ac"`, want: "€"},
		{raw: `"\ufffd"`, want: "\uFFFD"},
		{raw: `"\ud7ff\ue000"`, want: "\uD7FF\uE000"}, // either side of the surrogate range
		{raw: `"\ud83d\ude00"`, want: "😀"},
		{raw: `"\uD83D\uDE00"`, want: "😀"},
		{raw: `"\ud800\udc00"`, want: "\U00010000"},
		{raw: `"\udbff\udfff"`, want: "\U0010FFFF"},
		{raw: `"a\ud83d\ude00b\ud83d\ude01c"`, want: "a😀b😁c"},

		{raw: `"\ud800"`, wantErr: errLoneSurrogate},
		{raw: `"\ud83dx"`, wantErr: errLoneSurrogate},
		{raw: `"\ud83dxxxxxx"`, wantErr: errLoneSurrogate},
		{raw: `"\ud83d\n"`, wantErr: errLoneSurrogate},
		{raw: `"\ud83d\u0041"`, wantErr: errLoneSurrogate},
		{raw: `"\ud83d\ud83d"`, wantErr: errLoneSurrogate},
		{raw: `"\ud83d\ue000"`, wantErr: errLoneSurrogate},
		{raw: `"\udc00"`, wantErr: errLoneSurrogate},
		{raw: `"\udfff\ud83d"`, wantErr: errLoneSurrogate},
		{raw: `"\ude00\ude00"`, wantErr: errLoneSurrogate},
		{raw: `"x\ud800"`, wantErr: errLoneSurrogate},

		{raw: ``, wantErr: errNotString},
		{raw: `"`, wantErr: errNotString},
		{raw: `null`, wantErr: errNotString},
		{raw: `true`, wantErr: errNotString},
		{raw: `12`, wantErr: errNotString},
		{raw: `{}`, wantErr: errNotString},
		{raw: `[""]`, wantErr: errNotString},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			got, err := unquote(json.RawMessage(tt.raw))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("unquote(%s) error %v, want %v", tt.raw, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("unquote(%s) = %+q, want %+q", tt.raw, got, tt.want)
			}
			// Where encoding/json agrees a value is a valid string, both
			// must decode it the same way.
			var std string
			if err == nil && json.Unmarshal([]byte(tt.raw), &std) == nil && std != got {
				t.Errorf("unquote(%s) = %+q, encoding/json gives %+q", tt.raw, got, std)
			}
		})
	}
}

func TestCheckContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		ok     bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"application/json;charset=UTF-8", true},
		{`application/json; charset="utf-8"`, true},
		{"APPLICATION/JSON", true},
		{"application/json; foo=bar", true},
		{"", false},
		{"text/plain", false},
		{"text/json", false},
		{"application/jsonx", false},
		{"application/merge-patch+json", false},
		{"application/x-www-form-urlencoded", false},
		{"multipart/form-data; boundary=x", false},
		{"application/json; charset=latin1", false},
		{"application/json; charset=utf-16", false},
		{"application/json; charset=", false},
		{"application/json; charset=utf-8; charset=latin1", false},
		{"application/", false},
		{"json", false},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			err := checkContentType(tt.header)
			if tt.ok {
				if err != nil {
					t.Errorf("checkContentType(%q) = %v, want nil", tt.header, err)
				}
				return
			}
			var herr *httpError
			if !errors.As(err, &herr) || herr.status != http.StatusUnsupportedMediaType || herr.code != "unsupported_media_type" {
				t.Errorf("checkContentType(%q) = %#v, want a 415 unsupported_media_type", tt.header, err)
			}
		})
	}
}

func TestQueryKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rawQuery string
		want     string
		wantCode string
	}{
		{name: "key", rawQuery: "key=k", want: "k"},
		{name: "key_name", rawQuery: "key_name=k", want: "k"},
		{name: "both, same", rawQuery: "key=k&key_name=k", want: "k"},
		{name: "both, same after decoding", rawQuery: "key=a%2Fb&key_name=a/b", want: "a/b"},
		{name: "key twice, same", rawQuery: "key=k&key=k", want: "k"},
		{name: "other parameters ignored", rawQuery: "x=1&key=k&y=", want: "k"},
		{name: "slash encoded", rawQuery: "key=a%2Fb", want: "a/b"},
		{name: "percent encoded once", rawQuery: "key=a%252Fb", want: "a%2Fb"},
		{name: "plus is space", rawQuery: "key=a+b", want: "a b"},
		{name: "encoded plus", rawQuery: "key=a%2Bb", want: "a+b"},
		{name: "encoded space", rawQuery: "key=a%20b", want: "a b"},
		{name: "question mark", rawQuery: "key=%3F", want: "?"},
		{name: "raw question mark", rawQuery: "key=a?b", want: "a?b"},
		{name: "ampersand", rawQuery: "key=%26", want: "&"},
		{name: "hash", rawQuery: "key=%23", want: "#"},
		{name: "equals", rawQuery: "key=a=b", want: "a=b"},
		{name: "NUL", rawQuery: "key=%00", want: "\x00"},
		{name: "cyrillic", rawQuery: "key=%D0%BA%D0%BB%D1%8E%D1%87", want: "ключ"},
		{name: "emoji", rawQuery: "key=%F0%9F%98%80", want: "😀"},
		{name: "invalid UTF-8 passed through", rawQuery: "key=%FF", want: "\xff"},

		{name: "empty query", rawQuery: "", wantCode: "missing_key"},
		{name: "no key", rawQuery: "k=v", wantCode: "missing_key"},
		{name: "empty key", rawQuery: "key=", wantCode: "missing_key"},
		{name: "bare key", rawQuery: "key", wantCode: "missing_key"},
		{name: "empty key_name", rawQuery: "key_name=", wantCode: "missing_key"},
		{name: "key and key_name differ", rawQuery: "key=a&key_name=b", wantCode: "ambiguous_key"},
		{name: "key_name before key, differ", rawQuery: "key_name=b&key=a", wantCode: "ambiguous_key"},
		{name: "key twice, differ", rawQuery: "key=a&key=b", wantCode: "ambiguous_key"},
		{name: "key and empty key_name", rawQuery: "key=a&key_name=", wantCode: "ambiguous_key"},
		{name: "bad escape", rawQuery: "key=%G0", wantCode: "invalid_query"},
		{name: "truncated escape", rawQuery: "key=%4", wantCode: "invalid_query"},
		{name: "semicolon", rawQuery: "key=a;b", wantCode: "invalid_query"},
		{name: "bad escape elsewhere", rawQuery: "key=k&x=%zz", wantCode: "invalid_query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := queryKey(&http.Request{URL: &url.URL{Path: "/", RawQuery: tt.rawQuery}})
			if code := invalidCode(t, err); code != tt.wantCode {
				t.Fatalf("queryKey(%q) error code %q (%v), want %q", tt.rawQuery, code, err, tt.wantCode)
			}
			if got != tt.want {
				t.Errorf("queryKey(%q) = %+q, want %+q", tt.rawQuery, got, tt.want)
			}
		})
	}
}

// decodePutSeeds are the interesting bodies: escapes, surrogates, invalid
// UTF-8, wrong types, trailing data.
var decodePutSeeds = []string{
	`{"key_name":"k","key_value":"v"}`,
	`{"key_name":"k","key_value":""}`,
	`{"key_name":"","key_value":"v"}`,
	`{"key_value":"v"}`,
	`{"key_name":"k"}`,
	`{"key_name":"k","key_value":"v","extra":{"a":[1,2,null]}}`,
	`{"key_name":"\"\\\/\b\f\n\r\t","key_value":"\u0000\u00e9\uffff"}`,
	`{"key_name":"\ud83d\ude00","key_value":"\uD83D\uDE00"}`,
	`{"key_name":"\ud800","key_value":"v"}`,
	`{"key_name":"k","key_value":"\udc00"}`,
	`{"key_name":"k","key_value":"\ud83d\u0041"}`,
	`{"key_name":"k","key_value":"\ud83dx"}`,
	`{"key_name":"k","key_value":"\ud83d"}`,
	`{"key_name":"k","key_value":"\\ud800"}`,
	"{\"key_name\":\"\xff\",\"key_value\":\"v\"}",
	"{\"key_name\":\"k\",\"key_value\":\"\xed\xa0\x80\"}",
	`{"key_name":"k","key_value":"` + "\uFFFD" + `"}`,
	`{"key_name":1,"key_value":"v"}`,
	`{"key_name":"k","key_value":null}`,
	`{"key_name":"k","key_value":{}}`,
	`{"key_name":"k","key_value":[]}`,
	`{"key_name":"k","key_value":true}`,
	`{"key_name":"k","key_value":"v"} trailing`,
	`{"key_name":"a","key_name":"b","key_value":"v"}`,
	`{"key\u005fname":"k","key_value":"v"}`,
	`{"KEY_NAME":"k","key_value":"v"}`,
	`null`, `[]`, `""`, ``, `{`, `{"key_name":"`,
}

func FuzzDecodePut(f *testing.F) {
	for _, s := range decodePutSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodePut(body)
		code := invalidCode(t, err) // only client errors, never anything that maps to a 500
		if code == "duplicate_member" {
			if memberCount(body, "key_name") < 2 && memberCount(body, "key_value") < 2 {
				t.Fatalf("decodePut(%q) refused a duplicate member, but encoding/json sees none", body)
			}
			return
		}

		var std map[string]any
		stdErr := json.Unmarshal(body, &std)
		stdKey, keyIsString := std["key_name"].(string)
		stdValue, valueIsString := std["key_value"].(string)
		// encoding/json writes U+FFFD for invalid input it accepts; a
		// comparison is only meaningful where it did not have to.
		comparable := stdErr == nil && keyIsString && valueIsString &&
			!strings.ContainsRune(stdKey, utf8.RuneError) && !strings.ContainsRune(stdValue, utf8.RuneError)

		if err != nil {
			if comparable && utf8.Valid(body) {
				t.Fatalf("decodePut(%q) refused (%v) a body encoding/json decodes to key %+q value %+q", body, err, stdKey, stdValue)
			}
			return
		}
		if !utf8.ValidString(got.Key) || !utf8.ValidString(got.Value) {
			t.Fatalf("decodePut(%q) = %+q: not valid UTF-8", body, got)
		}
		if stdErr != nil || !keyIsString || !valueIsString {
			t.Fatalf("decodePut(%q) accepted %+q, but encoding/json does not see two strings (err %v)", body, got, stdErr)
		}
		if !strings.ContainsRune(stdKey, utf8.RuneError) && got.Key != stdKey {
			t.Fatalf("decodePut(%q) key %+q, encoding/json %+q", body, got.Key, stdKey)
		}
		if !strings.ContainsRune(stdValue, utf8.RuneError) && got.Value != stdValue {
			t.Fatalf("decodePut(%q) value %+q, encoding/json %+q", body, got.Value, stdValue)
		}
	})
}

// memberCount counts the members of the top-level object of body named
// name, as encoding/json reads them.
func memberCount(body []byte, name string) int {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0
	}
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		if tok == name {
			n++
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return n
		}
	}
	return n
}

func FuzzQueryKey(f *testing.F) {
	for _, k := range []string{"k", "a/b", "a%2Fb", "a b", "a+b", "ключ", "😀", "?", "&", "#", "=", ";", "\x00", "\xff", "%zz", "key=x&key_name=y"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if k == "" {
			return
		}
		for _, name := range []string{"key", "key_name"} {
			query := url.Values{name: {k}}.Encode()
			// Parsed as the server parses a request line.
			r := httptest.NewRequest(http.MethodGet, "/?"+query, nil)
			got, err := queryKey(r)
			if err != nil || got != k {
				t.Fatalf("queryKey(%q) = %+q, %v; want %+q", query, got, err, k)
			}
		}
	})
}

func BenchmarkDecodePut(b *testing.B) {
	escaped := strings.Repeat(`line\n\"quoted\"\t\u00e9\ud83d\ude00\\`, 256)
	benchmarks := []struct {
		name string
		body string
	}{
		{"small", `{"key_name":"` + strings.Repeat("k", 10) + `","key_value":"` + strings.Repeat("v", 100) + `"}`},
		{"64KiB value", `{"key_name":"` + strings.Repeat("k", 10) + `","key_value":"` + strings.Repeat("v", 64<<10) + `"}`},
		{"many escapes", `{"key_name":"` + strings.Repeat("k", 10) + `","key_value":"` + escaped + `"}`},
	}
	for _, bm := range benchmarks {
		body := []byte(bm.body)
		if _, err := decodePut(body); err != nil {
			b.Fatalf("%s: %v", bm.name, err)
		}
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := decodePut(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An unknown member costs nothing beyond the body already read: decoding
// copies out only the key and the value. (A map of raw members copied
// every member, so megabytes of an ignored member were held twice.)
func TestDecodePutDoesNotCopyUnknownMembers(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	body := []byte(`{"ignored":"` + big + `","also":["` + big + `"],"key_name":"k","key_value":"v"}`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := decodePut(body)
	runtime.ReadMemStats(&after)
	if err != nil || got.Key != "k" || got.Value != "v" {
		t.Fatalf("decodePut = %+v, %v", got, err)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 1<<20 {
		t.Errorf("decoding a %d-byte body with 16 MiB of unknown members allocated %d bytes; want under 1 MiB", len(body), allocated)
	}
}
