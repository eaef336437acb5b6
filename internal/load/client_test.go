package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI answers like the kvfleet API for the keys the tests use.
func fakeAPI(t *testing.T) *httptest.Server {
	t.Helper()
	v := ver(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		key := r.URL.Query().Get("key")
		if r.Method == http.MethodPut {
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			key = body["key_name"]
		} else if r.Method == http.MethodDelete {
			key = r.URL.Query().Get("key_name")
		}
		switch key {
		case "ok":
			if r.Method == http.MethodGet {
				_, _ = io.WriteString(w, `{"key_name":"ok","value":"val","source":"redis","version":"`+v+`"}`)
				return
			}
			w.Header().Set("ETag", `"`+v+`"`)
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"message":"Queued","status_code":202,"key_name":"ok","version":"`+v+`"}`)
		case "etag-only":
			w.Header().Set("ETag", `"`+v+`"`)
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"key_name":"etag-only"}`)
		case "no-version":
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"key_name":"no-version"}`)
		case "other-key":
			_, _ = io.WriteString(w, `{"key_name":"someone-else","value":"x","version":"`+v+`"}`)
		case "missing":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"detail":"Key not found","code":"not_found"}`)
		case "busy":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"detail":"try again","code":"queue_unavailable"}`)
		case "html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientDescribesAnswers(t *testing.T) {
	srv := fakeAPI(t)
	c, err := NewClient(srv.URL, 300*time.Millisecond, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cases := []struct {
		name      string
		req       Request
		status    int
		code      string
		version   bool
		failure   string
		available bool
	}{
		{"put accepted", Request{Op: OpPut, Key: "ok", Value: "v"}, 202, "", true, "", true},
		{"delete accepted", Request{Op: OpDelete, Key: "ok"}, 202, "", true, "", true},
		{"version from the ETag", Request{Op: OpPut, Key: "etag-only", Value: "v"}, 202, "", true, "", true},
		{"202 without a version is no acknowledgement", Request{Op: OpPut, Key: "no-version", Value: "v"}, 202, "no_version", false, "", false},
		{"read", Request{Op: OpGet, Key: "ok"}, 200, "", true, "", true},
		{"read answered for another key", Request{Op: OpGet, Key: "other-key"}, 200, "wrong_key", false, "", false},
		{"read not found", Request{Op: OpGet, Key: "missing"}, 404, "not_found", false, "", true},
		{"write refused for now", Request{Op: OpPut, Key: "busy", Value: "v"}, 503, "queue_unavailable", false, "", false},
		{"proxy's HTML", Request{Op: OpGet, Key: "html"}, 502, "not_json", false, "", false},
		{"timeout", Request{Op: OpPut, Key: "slow", Value: "v"}, 0, "", false, FailTimeout, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := c.Do(t.Context(), tc.req)
			if o.Status != tc.status || o.Code != tc.code || (o.Version != "") != tc.version || o.Failure != tc.failure || o.Available() != tc.available {
				t.Fatalf("outcome %+v; want status %d code %q version %v failure %q available %v",
					o, tc.status, tc.code, tc.version, tc.failure, tc.available)
			}
		})
	}
	if o := c.Do(t.Context(), Request{Op: OpGet, Key: "ok"}); o.ReadValue != "val" || o.Source != "redis" {
		t.Fatalf("read value %q from %q, want val from redis", o.ReadValue, o.Source)
	}
}

func TestClientRefusedConnection(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := NewClient(url, time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Do(t.Context(), Request{Op: OpGet, Key: "k"}); o.Failure != FailRefused || !o.ServerError() {
		t.Fatalf("outcome %+v, want a refused connection", o)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if o := c.Do(ctx, Request{Op: OpGet, Key: "k"}); o.Failure != FailCanceled {
		t.Fatalf("outcome %+v, want canceled", o)
	}
}

func TestClientOnlyTalksToThisMachine(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000", "http://127.0.0.2"} {
		if _, err := NewClient(u, time.Second, 1); err != nil {
			t.Errorf("NewClient(%q): %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:8000", "http://example.com", "http://0.0.0.0:8000", "http://192.168.1.1"} {
		if _, err := NewClient(u, time.Second, 1); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("NewClient(%q) = %v, want ErrNotLoopback", u, err)
		}
	}
	if _, err := NewClient("https://127.0.0.1", time.Second, 1); err == nil {
		t.Error("NewClient accepted https, which it does not speak")
	}
}

// closingServer answers the first request on a connection it keeps alive,
// reads the second one on that connection and closes it without an answer,
// as nginx closes an idle keep-alive connection when it reloads; every
// later connection is answered. It counts the requests it read.
func closingServer(t *testing.T) (base string, requests *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	requests = &atomic.Int32{}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	v := ver(1)
	answer := func(conn net.Conn, r *http.Request) error {
		body := `{"message":"Queued","status_code":202,"key_name":"ok","version":"` + v + `"}`
		status := "202 Accepted"
		if r.Method == http.MethodGet {
			body, status = `{"key_name":"ok","value":"val","source":"redis","version":"`+v+`"}`, "200 OK"
		}
		_, err := fmt.Fprintf(conn, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
		return err
	}
	wg.Go(func() {
		for first := true; ; first = false {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for i := 0; ; i++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					requests.Add(1)
					if first && i == 1 {
						return // closed with the request unanswered
					}
					if answer(conn, r) != nil {
						return
					}
				}
			})
		}
	})
	return "http://" + ln.Addr().String(), requests
}

// A write on a kept-alive connection that the server closes before
// answering (nginx's reload) is sent again on a new connection, and
// succeeds: PUT and DELETE alike, as GET always was.
func TestWriteResentWhenAnIdleConnectionIsClosedUnanswered(t *testing.T) {
	for _, op := range []Op{OpPut, OpDelete, OpGet} {
		t.Run(op.String(), func(t *testing.T) {
			base, requests := closingServer(t)
			c, err := NewClient(base, 5*time.Second, 4)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 2 {
				o := c.Do(context.Background(), Request{Op: op, Key: "ok", Value: "v"})
				if !o.Available() {
					t.Fatalf("request %d: %s, want an answer", i+1, o.Kind())
				}
			}
			if n := requests.Load(); n != 3 {
				t.Errorf("the server read %d requests, want 3 (the second one twice)", n)
			}
		})
	}
}
