package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/httpapi"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/version"
)

// blockingKV holds every Get until release is closed.
type blockingKV struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingKV) Get(ctx context.Context, key string) (kv.Item, kv.Source, error) {
	b.entered <- struct{}{}
	<-b.release
	return kv.Item{Key: key, Value: "v", Version: kvtest.V(1)}, kv.SourceCache, nil
}

func (b *blockingKV) Put(context.Context, string, string) (version.Version, error) {
	return kvtest.V(2), nil
}

func (b *blockingKV) Delete(context.Context, string) (version.Version, error) {
	return kvtest.V(3), nil
}

// Beyond the in-flight limit a replica answers 503 overloaded at once, with
// Retry-After, rather than queueing requests until they all time out; its
// health endpoints stay out of the limit.
func TestInFlightLimitShedsLoad(t *testing.T) {
	block := &blockingKV{entered: make(chan struct{}, 8), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	h := httpapi.New(httpapi.Config{
		KV: block, MaxBodyBytes: 1 << 10, MaxInFlight: 2,
		Cache: kvtest.Pinger{}, Store: kvtest.Pinger{}, Broker: kvtest.Broker{Up: true},
		Readiness: &httpapi.Readiness{}, HealthTimeout: time.Second,
		Now: time.Now, Logger: slog.New(slog.DiscardHandler), Registerer: reg,
	})
	get := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?key=k", nil))
		return rec
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if rec := get(); rec.Code != http.StatusOK {
				t.Errorf("admitted request answered %d: %s", rec.Code, rec.Body)
			}
		})
	}
	<-block.entered
	<-block.entered
	if got := gaugeValue(t, reg, "kvfleet_http_in_flight"); got != 2 {
		t.Errorf("kvfleet_http_in_flight = %v, want 2", got)
	}

	rec := get()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third request: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	var body struct{ Detail, Code string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != "overloaded" || body.Detail == "" {
		t.Errorf("shed body %s (%v), want code overloaded", rec.Body, err)
	}
	health := httptest.NewRecorder()
	h.ServeHTTP(health, httptest.NewRequest(http.MethodGet, "/health", nil))
	if health.Code != http.StatusOK {
		t.Errorf("/health at the limit = %d, want 200", health.Code)
	}

	close(block.release)
	wg.Wait()
	block.release = make(chan struct{})
	close(block.release)
	if rec := get(); rec.Code != http.StatusOK {
		t.Errorf("after the load passed: %d, want 200", rec.Code)
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// countingPinger counts the round trips /health makes.
type countingPinger struct{ n atomic.Int64 }

func (p *countingPinger) Ping(context.Context) error { p.n.Add(1); return nil }

// /health answers from a state refreshed at most once a second, so that
// polling it is no load on the dependencies.
func TestHealthIsRefreshedAtMostOnceASecond(t *testing.T) {
	var now atomic.Pointer[time.Time]
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now.Store(&start)
	cachePing, storePing := &countingPinger{}, &countingPinger{}
	h := httpapi.New(httpapi.Config{
		KV: &blockingKV{}, MaxBodyBytes: 1 << 10,
		Cache: cachePing, Store: storePing, Broker: kvtest.Broker{Up: true},
		Readiness: &httpapi.Readiness{}, HealthTimeout: time.Second,
		Now: func() time.Time { return *now.Load() }, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
	})
	poll := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("/health = %d", rec.Code)
		}
	}
	for range 50 {
		poll()
	}
	if c, s := cachePing.n.Load(), storePing.n.Load(); c != 1 || s != 1 {
		t.Fatalf("50 polls within a second pinged Redis %d and the database %d times, want 1 each", c, s)
	}
	later := start.Add(time.Second)
	now.Store(&later)
	poll()
	poll()
	if c, s := cachePing.n.Load(), storePing.n.Load(); c != 2 || s != 2 {
		t.Fatalf("after a second: pinged %d and %d times, want 2 each", c, s)
	}
}

// While draining, every response asks the client (nginx) to close its
// connection, so that no pooled connection is found closed mid-write when
// the server stops.
func TestDrainingClosesConnections(t *testing.T) {
	f := newFixture(t, deps{})
	f.ready.SetReady(true)
	if got := f.do(t, request{method: http.MethodGet, target: "/?key=k"}).Header().Get("Connection"); got != "" {
		t.Errorf("ready replica sent Connection: %q, want none", got)
	}
	f.ready.SetReady(false)
	for _, r := range []request{
		{method: http.MethodGet, target: "/?key=k"},
		{method: http.MethodPut, body: `{"key_name":"k","key_value":"v"}`},
		{method: http.MethodGet, target: "/readyz"},
	} {
		if got := f.do(t, r).Header().Get("Connection"); got != "close" {
			t.Errorf("%s %s while draining: Connection %q, want close", r.method, r.target, got)
		}
	}
}

// blockingPutKV holds every Put until release is closed.
type blockingPutKV struct {
	blockingKV
	putEntered chan struct{}
}

func (b *blockingPutKV) Put(context.Context, string, string) (version.Version, error) {
	b.putEntered <- struct{}{}
	<-b.release
	return kvtest.V(2), nil
}

// Request bodies are admitted by their bytes as well as by their number:
// while a large write is in flight, one more that would take the replica
// over its byte budget is shed before its body is read, a body of unknown
// length counts as the largest allowed, and requests without a body are
// not held back by it.
func TestInFlightBytesLimitShedsLargeBodies(t *testing.T) {
	block := &blockingPutKV{blockingKV: blockingKV{entered: make(chan struct{}, 8), release: make(chan struct{})},
		putEntered: make(chan struct{}, 8)}
	reg := prometheus.NewRegistry()
	h := httpapi.New(httpapi.Config{
		KV: block, MaxBodyBytes: 1000, MaxInFlight: 100, MaxInFlightBytes: 1000,
		Cache: kvtest.Pinger{}, Store: kvtest.Pinger{}, Broker: kvtest.Broker{Up: true},
		Readiness: &httpapi.Readiness{}, HealthTimeout: time.Second,
		Now: time.Now, Logger: slog.New(slog.DiscardHandler), Registerer: reg,
	})
	put := func(size int, chunked bool) *httptest.ResponseRecorder {
		body := `{"key_name":"k","key_value":"` + strings.Repeat("v", size-31) + `"}`
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // httptest leaves ContentLength at -1
		}
		req := httptest.NewRequest(http.MethodPut, "/", r)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		if rec := put(800, false); rec.Code != http.StatusAccepted {
			t.Errorf("first write: %d %s", rec.Code, rec.Body)
		}
	})
	<-block.putEntered
	if got := gaugeValue(t, reg, "kvfleet_http_in_flight_bytes"); got != 800 {
		t.Errorf("kvfleet_http_in_flight_bytes = %v, want 800", got)
	}
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{{"a 300-byte body", 300, false}, {"a 40-byte body of unknown length", 40, true}} {
		rec := put(tc.size, tc.chunked)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s over the budget: %d, Retry-After %q; want 503 with Retry-After", tc.name, rec.Code, rec.Header().Get("Retry-After"))
		}
		var body struct{ Detail, Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != "overloaded" {
			t.Errorf("%s: body %s, want code overloaded", tc.name, rec.Body)
		}
	}
	// A read has no body to weigh.
	close(block.release)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?key=k", nil))
	<-block.entered
	if rec.Code != http.StatusOK {
		t.Errorf("a read while the budget was spent: %d", rec.Code)
	}
	wg.Wait()
	if got := gaugeValue(t, reg, "kvfleet_http_in_flight_bytes"); got != 0 {
		t.Errorf("kvfleet_http_in_flight_bytes after the write = %v, want 0", got)
	}
	if rec := put(300, false); rec.Code != http.StatusAccepted {
		t.Errorf("a 300-byte write once the budget is free: %d %s", rec.Code, rec.Body)
	}
}
