package bench

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const v1 = "0001a2b3c4d5e6f70000000000000007"

func fakeFleet(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodPut:
			var body map[string]string
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			switch body["key_name"] {
			case "busy":
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `{"detail":"try later","code":"queue_unavailable"}`)
			case "no-etag":
				w.WriteHeader(http.StatusAccepted)
				_, _ = io.WriteString(w, `{"key_name":"no-etag","version":"`+v1+`"}`)
			case "nothing":
				w.WriteHeader(http.StatusAccepted)
			default:
				w.Header().Set("ETag", `"`+v1+`"`)
				w.WriteHeader(http.StatusAccepted)
			}
		case http.MethodGet:
			switch r.URL.Query().Get("key") {
			case "a b/c":
				_, _ = io.WriteString(w, `{"key_name":"a b/c","value":"x","source":"redis","version":"`+v1+`"}`)
			case "db":
				_, _ = io.WriteString(w, `{"key_name":"db","value":"x","source":"database","version":"`+v1+`"}`)
			case "html":
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html>bad gateway</html>")
			default:
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"detail":"Key not found","code":"not_found"}`)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientAnswers(t *testing.T) {
	c, err := NewClient(fakeFleet(t).URL, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	cases := []struct {
		name       string
		a          Answer
		want       int
		notFoundOK bool
		class      string
		version    string
		cached     bool
	}{
		{"cached read of an escaped key", c.Get(ctx, "a b/c"), 200, false, "", v1, true},
		{"read from the database", c.Get(ctx, "db"), 200, false, "", v1, false},
		{"missing key, a miss phase", c.Get(ctx, "nope"), 200, true, "", "", false},
		{"missing key, a cached phase", c.Get(ctx, "nope"), 200, false, "http_404_not_found", "", false},
		{"proxy error page", c.Get(ctx, "html"), 200, false, "http_502", "", false},
		{"accepted write", c.Put(ctx, "k", "v"), 202, false, "", v1, false},
		{"version from the body", c.Put(ctx, "no-etag", "v"), 202, false, "", v1, false},
		{"202 without a version", c.Put(ctx, "nothing", "v"), 202, false, "no_version", "", false},
		{"refused write", c.Put(ctx, "busy", "v"), 202, false, "http_503_queue_unavailable", "", false},
	}
	for _, tc := range cases {
		if got := tc.a.Class(tc.want, tc.notFoundOK); got != tc.class || tc.a.Version != tc.version || tc.a.Cached != tc.cached {
			t.Errorf("%s: class %q version %q cached %v; want %q %q %v", tc.name, got, tc.a.Version, tc.a.Cached, tc.class, tc.version, tc.cached)
		}
	}
}

func TestClientTransportFailures(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := NewClient(url, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Get(t.Context(), "k"); a.Class(200, false) != "refused" {
		t.Fatalf("closed port: %+v", a)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	c2, _ := NewClient(slow.URL, 1, 100*time.Millisecond)
	if a := c2.Get(t.Context(), "k"); a.Class(200, false) != "timeout" {
		t.Fatalf("slow server: %+v", a)
	}
}

func TestOnlyLoopbackTargets(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000", "http://127.0.0.2:18000"} {
		if _, err := CheckLoopback(u); err != nil {
			t.Errorf("CheckLoopback(%q): %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:8000", "http://example.com", "http://0.0.0.0:8000", "http://192.168.1.1"} {
		if _, err := CheckLoopback(u); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("CheckLoopback(%q) = %v, want ErrNotLoopback", u, err)
		}
	}
	for _, u := range []string{"https://127.0.0.1", "127.0.0.1:8000", "http://"} {
		if _, err := CheckLoopback(u); err == nil {
			t.Errorf("CheckLoopback(%q) accepted it", u)
		}
	}
	if _, err := NewClient("http://127.0.0.1:1", 0, time.Second); err == nil {
		t.Error("NewClient accepted zero connections")
	}
}

func TestJSONField(t *testing.T) {
	raw := []byte(`{"key_name":"k","value":"v","source":"redis","version":"abc"}`)
	if jsonField(raw, "version") != "abc" || jsonField(raw, "source") != "redis" || jsonField(raw, "code") != "" {
		t.Fatal("jsonField misread a flat object")
	}
	if jsonField([]byte(`{"version":"unterminated`), "version") != "" {
		t.Fatal("jsonField returned part of an unterminated string")
	}
}
