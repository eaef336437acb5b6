package systemtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// pausingStore lets a read reach the database and then holds it, before it
// returns to the service that will fill the cache with it.
type pausingStore struct {
	kv.Store
	read    chan kv.Item
	proceed chan struct{}
}

func (s *pausingStore) Get(ctx context.Context, key string) (kv.Item, error) {
	item, err := s.Store.Get(ctx, key)
	if err != nil {
		return item, err
	}
	s.read <- item
	<-s.proceed
	return item, nil
}

// staleFill forces the classic race on real Redis and PostgreSQL: a reader
// misses and reads v1; a consumer commits v2 and caches it; the reader then
// fills the cache with v1. The versioned fill must leave v2 in place.
func staleFill(t *testing.T, f *fleet) {
	ctx := t.Context()
	key := "stale-fill"
	v1 := kv.Item{Key: key, Value: "v1", Version: f.clock.Next()}
	if _, err := f.store.Apply(ctx, []kv.Item{v1}); err != nil { // committed, not cached
		t.Fatal(err)
	}

	paused := &pausingStore{Store: f.store, read: make(chan kv.Item, 1), proceed: make(chan struct{})}
	reader := kv.NewService(kv.ServiceConfig{
		Limits: kv.DefaultLimits, Clock: version.NewClock(99, time.Now), Cache: f.cache, Store: paused,
		Publisher: f.publisher, Now: time.Now, ReadTimeout: 30 * time.Second, Registerer: prometheus.NewRegistry(),
	})
	type result struct {
		item   kv.Item
		source kv.Source
		err    error
	}
	done := make(chan result, 1)
	go func() {
		item, source, err := reader.Get(ctx, key)
		done <- result{item, source, err}
	}()
	if got := <-paused.read; got != v1 {
		t.Fatalf("reader read %+v, want v1", got)
	}

	// While the reader holds v1, a newer write is accepted, committed and cached.
	put := f.put(t, key, "v2")
	if put.Status != http.StatusAccepted {
		t.Fatalf("PUT = %+v", put)
	}
	v2 := kv.Item{Key: key, Value: "v2", Version: mustVersion(t, put.Version)}
	f.eventually(t, 10*time.Second, "the consumer to commit and cache v2", func() error {
		return f.converged(ctx, map[string]kv.Item{key: v2})
	})
	if cached, err := f.cache.Get(ctx, key); err != nil || cached != v2 {
		t.Fatalf("cache before the stale fill = %+v, %v; want v2 cached", cached, err)
	}

	close(paused.proceed)
	r := <-done
	if r.err != nil || r.item != v1 || r.source != kv.SourceDatabase {
		t.Fatalf("reader got %+v from %s, %v; want v1 from the database", r.item, r.source, r.err)
	}
	if cached, err := f.cache.Get(ctx, key); err != nil || cached != v2 {
		t.Fatalf("cache after the stale fill = %+v, %v; want v2", cached, err)
	}
	if got := f.get(t, key); got.Value != "v2" || got.Source != "redis" {
		t.Fatalf("GET after the race = %+v, want v2 from redis", got)
	}
}

func mustVersion(t *testing.T, s string) version.Version {
	t.Helper()
	v, err := version.Parse(s)
	if err != nil {
		t.Fatalf("version %q: %v", s, err)
	}
	return v
}
