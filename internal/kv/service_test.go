package kv_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/version"
)

// acceptedAt is what the fake wall clock of the service reads.
var acceptedAt = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type fixture struct {
	svc   *kv.Service
	store *kvtest.MemoryStore
	cache *kvtest.MemoryCache
	pub   *kvtest.RecordingPublisher
	reg   *prometheus.Registry
}

// newFixture builds a Service over the in-memory stand-ins; store, when not
// nil, wraps the memory store.
func newFixture(t *testing.T, wrap func(kv.Store) kv.Store) *fixture {
	t.Helper()
	f := &fixture{
		store: kvtest.NewMemoryStore(),
		cache: kvtest.NewMemoryCache(),
		pub:   &kvtest.RecordingPublisher{},
		reg:   prometheus.NewRegistry(),
	}
	var store kv.Store = f.store
	if wrap != nil {
		store = wrap(store)
	}
	// The clock's wall clock stands still, so versions come from the
	// logical counter; the service's own now is a separate fake.
	clock := version.NewClock(5, func() time.Time { return acceptedAt })
	f.svc = kv.NewService(kv.ServiceConfig{
		Limits:      testLimits,
		Clock:       clock,
		Cache:       f.cache,
		Store:       store,
		Publisher:   f.pub,
		Now:         func() time.Time { return acceptedAt },
		ReadTimeout: time.Minute,
		Registerer:  f.reg,
	})
	return f
}

func (f *fixture) apply(t *testing.T, items ...kv.Item) {
	t.Helper()
	if _, err := f.store.Apply(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

// fallbacks reads kvfleet_read_fallbacks_total{reason}.
func (f *fixture) fallbacks(t *testing.T, reason string) float64 {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "kvfleet_read_fallbacks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	stored := kv.Item{Key: "k", Value: "from db", Version: kvtest.V(10)}
	tombstone := kv.Item{Key: "k", Version: kvtest.V(11), Deleted: true}
	tests := []struct {
		name string
		// setup prepares the stand-ins.
		setup      func(t *testing.T, f *fixture)
		wantItem   kv.Item
		wantSource kv.Source
		wantErr    error
		// wantCached is the cache entry the read leaves, if any.
		wantCached *kv.Item
		wantReads  int
		wantReason string
	}{
		{
			name: "hit",
			setup: func(t *testing.T, f *fixture) {
				_ = f.cache.Fill(ctx, kv.Item{Key: "k", Value: "from cache", Version: kvtest.V(9)})
				f.apply(t, stored)
			},
			wantItem:   kv.Item{Key: "k", Value: "from cache", Version: kvtest.V(9)},
			wantSource: kv.SourceCache,
			wantCached: &kv.Item{Key: "k", Value: "from cache", Version: kvtest.V(9)},
		},
		{
			name:       "miss reads the store and fills the cache",
			setup:      func(t *testing.T, f *fixture) { f.apply(t, stored) },
			wantItem:   stored,
			wantSource: kv.SourceDatabase,
			wantCached: &stored,
			wantReads:  1,
			wantReason: "miss",
		},
		{
			name:       "tombstone is not found and cached",
			setup:      func(t *testing.T, f *fixture) { f.apply(t, tombstone) },
			wantSource: kv.SourceDatabase,
			wantErr:    kv.ErrNotFound,
			wantCached: &tombstone,
			wantReads:  1,
			wantReason: "miss",
		},
		{
			name:       "never written is not found and a zero-version marker is cached",
			setup:      func(*testing.T, *fixture) {},
			wantSource: kv.SourceDatabase,
			wantErr:    kv.ErrNotFound,
			wantCached: &kv.Item{Key: "k", Deleted: true},
			wantReads:  1,
			wantReason: "miss",
		},
		{
			name: "cache error falls back to the store",
			setup: func(t *testing.T, f *fixture) {
				f.apply(t, stored)
				f.cache.SetErr(kvtest.ErrDown)
			},
			wantItem:   stored,
			wantSource: kv.SourceDatabase,
			wantReads:  1,
			wantReason: "cache_error",
		},
		{
			name:       "store error on a miss",
			setup:      func(t *testing.T, f *fixture) { f.store.SetErr(kvtest.ErrDown) },
			wantErr:    kv.ErrStoreUnavailable,
			wantReads:  1,
			wantReason: "miss",
		},
		{
			name: "cache and store both down",
			setup: func(t *testing.T, f *fixture) {
				f.cache.SetErr(kvtest.ErrDown)
				f.store.SetErr(kvtest.ErrDown)
			},
			wantErr:    kv.ErrStoreUnavailable,
			wantReads:  1,
			wantReason: "cache_error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tt.setup(t, f)
			item, source, err := f.svc.Get(ctx, "k")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Get error = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, kv.ErrStoreUnavailable) && !errors.Is(err, kvtest.ErrDown) {
				t.Errorf("Get error = %v, want the store's error kept in the chain", err)
			}
			if item != tt.wantItem {
				t.Errorf("Get item = %+v, want %+v", item, tt.wantItem)
			}
			if source != tt.wantSource {
				t.Errorf("Get source = %q, want %q", source, tt.wantSource)
			}
			if f.store.Gets != tt.wantReads {
				t.Errorf("store reads = %d, want %d", f.store.Gets, tt.wantReads)
			}
			f.cache.SetErr(nil)
			cached, ok := f.cache.Entry("k")
			switch {
			case tt.wantCached == nil && ok:
				t.Errorf("cache holds %+v, want nothing", cached)
			case tt.wantCached != nil && (!ok || cached != *tt.wantCached):
				t.Errorf("cache holds %+v (present %v), want %+v", cached, ok, *tt.wantCached)
			}
			for _, reason := range []string{"miss", "cache_error"} {
				want := 0.0
				if reason == tt.wantReason {
					want = 1
				}
				if got := f.fallbacks(t, reason); got != want {
					t.Errorf("fallbacks{reason=%q} = %v, want %v", reason, got, want)
				}
			}
		})
	}
}

func TestGetSecondReadIsAHit(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		stored  []kv.Item
		want    kv.Item
		wantErr error
	}{
		{"value", []kv.Item{{Key: "k", Value: "v", Version: kvtest.V(3)}}, kv.Item{Key: "k", Value: "v", Version: kvtest.V(3)}, nil},
		{"tombstone", []kv.Item{{Key: "k", Version: kvtest.V(3), Deleted: true}}, kv.Item{}, kv.ErrNotFound},
		{"never written", nil, kv.Item{}, kv.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.apply(t, tt.stored...)
			for i, wantSource := range []kv.Source{kv.SourceDatabase, kv.SourceCache, kv.SourceCache} {
				item, source, err := f.svc.Get(ctx, "k")
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Fatalf("read %d: error = %v, want %v", i, err, tt.wantErr)
				}
				if item != tt.want || source != wantSource {
					t.Fatalf("read %d: %+v from %q, want %+v from %q", i, item, source, tt.want, wantSource)
				}
			}
			if f.store.Gets != 1 {
				t.Errorf("store reads = %d, want 1", f.store.Gets)
			}
		})
	}
}

func TestNotFoundMarkerIsReplacedByAWrite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, _, err := f.svc.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get of a never-written key: %v, want ErrNotFound", err)
	}
	written := kv.Item{Key: "k", Value: "now it exists", Version: kvtest.V(1)}
	if err := f.cache.Update(ctx, []kv.Item{written}); err != nil {
		t.Fatal(err)
	}
	item, source, err := f.svc.Get(ctx, "k")
	if err != nil || item != written || source != kv.SourceCache {
		t.Fatalf("Get after the write = %+v, %q, %v; want %+v from the cache", item, source, err, written)
	}
}

func TestGetInvalidKeyReadsNothing(t *testing.T) {
	tests := []struct{ name, key, code string }{
		{"empty", "", "missing_key"},
		{"too long", strings.Repeat("k", 9), "key_too_long"},
		{"invalid utf-8", "\xff", "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, _, err := f.svc.Get(context.Background(), tt.key)
			wantCode(t, err, tt.code)
			if f.store.Gets != 0 {
				t.Errorf("store reads = %d, want 0", f.store.Gets)
			}
		})
	}
}

// ctxRecorder is a store that remembers, for its last Get, whether the
// context was already done and whether it had a deadline.
type ctxRecorder struct {
	kv.Store
	mu          sync.Mutex
	err         error
	hasDeadline bool
}

func (s *ctxRecorder) Get(ctx context.Context, key string) (kv.Item, error) {
	s.mu.Lock()
	s.err = ctx.Err()
	_, s.hasDeadline = ctx.Deadline()
	s.mu.Unlock()
	return s.Store.Get(ctx, key)
}

func TestGetReadRunsOnItsOwnDeadline(t *testing.T) {
	var rec *ctxRecorder
	f := newFixture(t, func(s kv.Store) kv.Store { rec = &ctxRecorder{Store: s}; return rec })
	f.apply(t, kv.Item{Key: "k", Value: "v", Version: kvtest.V(1)})
	// The request that starts the shared read has already given up; the
	// others waiting for the key must still get their answer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.svc.Get(ctx, "k"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.err != nil {
		t.Errorf("the store read ran on a context that was already done: %v", rec.err)
	}
	if !rec.hasDeadline {
		t.Errorf("the store read has no deadline")
	}
}

// gate is a store whose Get reads the wrapped store, reports that it did on
// entered, and then waits for release before returning.
type gate struct {
	kv.Store
	entered chan struct{}
	release chan struct{}
}

func newGate(s kv.Store) *gate {
	return &gate{Store: s, entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) Get(ctx context.Context, key string) (kv.Item, error) {
	item, err := g.Store.Get(ctx, key)
	g.entered <- struct{}{}
	<-g.release
	return item, err
}

// waitingInFlight counts goroutines that joined a singleflight call started
// by another goroutine: they block in WaitGroup.Wait inside Group.Do.
// Reading the stacks is the only way to see that a caller has joined; it
// makes the singleflight test exact instead of hoping a pause was long
// enough.
func waitingInFlight() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		i := strings.Index(g, "sync.(*WaitGroup).Wait(")
		if i >= 0 && strings.Contains(g[i:], "singleflight.(*Group).Do(") && !strings.Contains(g, "doCall") {
			count++
		}
	}
	return count
}

func TestGetSingleflight(t *testing.T) {
	const readers = 16
	var g *gate
	f := newFixture(t, func(s kv.Store) kv.Store { g = newGate(s); return g })
	stored := kv.Item{Key: "hot", Value: "v", Version: kvtest.V(2)}
	f.apply(t, stored)

	type result struct {
		item   kv.Item
		source kv.Source
		err    error
	}
	results := make(chan result, readers)
	var wg sync.WaitGroup
	read := func() {
		defer wg.Done()
		item, source, err := f.svc.Get(context.Background(), "hot")
		results <- result{item, source, err}
	}

	// The first reader starts the database read and is held inside it.
	wg.Add(1)
	go read()
	<-g.entered

	// The others miss the cache too and must join the read in flight.
	for range readers - 1 {
		wg.Add(1)
		go read()
	}
	deadline := time.Now().Add(30 * time.Second)
	for waitingInFlight() < readers-1 {
		if len(g.entered) > 0 || time.Now().After(deadline) {
			joined := waitingInFlight()
			close(g.release)
			wg.Wait()
			t.Fatalf("only %d of %d readers joined the read in flight; the store was read %d times", joined, readers-1, f.store.Gets)
		}
		time.Sleep(time.Millisecond)
	}
	close(g.release)
	wg.Wait()
	close(results)

	for r := range results {
		if r.err != nil || r.item != stored || r.source != kv.SourceDatabase {
			t.Errorf("reader got %+v from %q, %v; want %+v from the database", r.item, r.source, r.err, stored)
		}
	}
	if f.store.Gets != 1 {
		t.Errorf("store reads = %d for %d concurrent readers of one key, want 1", f.store.Gets, readers)
	}
	if got := f.fallbacks(t, "miss"); got != readers {
		t.Errorf("fallbacks{reason=miss} = %v, want %d", got, readers)
	}
}

func TestStaleFillLosesToNewerUpdate(t *testing.T) {
	ctx := context.Background()
	newer := kv.Item{Key: "k", Value: "v2", Version: kvtest.V(200)}
	tests := []struct {
		name string
		// stored is what the reader finds in the database.
		stored   []kv.Item
		wantRead kv.Item
		wantErr  error
	}{
		{"reader saw an older value", []kv.Item{{Key: "k", Value: "v1", Version: kvtest.V(100)}}, kv.Item{Key: "k", Value: "v1", Version: kvtest.V(100)}, nil},
		{"reader saw an older tombstone", []kv.Item{{Key: "k", Version: kvtest.V(100), Deleted: true}}, kv.Item{}, kv.ErrNotFound},
		{"reader saw no row", nil, kv.Item{}, kv.ErrNotFound},
		{"newer update is a tombstone", []kv.Item{{Key: "k", Value: "v1", Version: kvtest.V(100)}}, kv.Item{Key: "k", Value: "v1", Version: kvtest.V(100)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			update := newer
			if tt.name == "newer update is a tombstone" {
				update = kv.Item{Key: "k", Version: kvtest.V(200), Deleted: true}
			}
			var g *gate
			f := newFixture(t, func(s kv.Store) kv.Store { g = newGate(s); return g })
			f.apply(t, tt.stored...)

			type result struct {
				item kv.Item
				err  error
			}
			done := make(chan result, 1)
			go func() {
				item, _, err := f.svc.Get(ctx, "k")
				done <- result{item, err}
			}()
			<-g.entered // the reader holds what the database said before the write

			// A consumer applies a newer write and updates the cache.
			f.apply(t, update)
			if err := f.cache.Update(ctx, []kv.Item{update}); err != nil {
				t.Fatal(err)
			}
			close(g.release) // now the reader fills the cache with what it read
			r := <-done

			if r.item != tt.wantRead || !errors.Is(r.err, tt.wantErr) || (tt.wantErr == nil && r.err != nil) {
				t.Errorf("the racing reader got %+v, %v; want %+v, %v", r.item, r.err, tt.wantRead, tt.wantErr)
			}
			if cached, ok := f.cache.Entry("k"); !ok || cached != update {
				t.Errorf("cache holds %+v (present %v), want the newer %+v", cached, ok, update)
			}
			item, source, err := f.svc.Get(ctx, "k")
			wantItem, wantErr := update, error(nil)
			if update.Deleted {
				wantItem, wantErr = kv.Item{}, kv.ErrNotFound
			}
			if item != wantItem || source != kv.SourceCache || !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
				t.Errorf("the next Get = %+v from %q, %v; want %+v from the cache, %v", item, source, err, wantItem, wantErr)
			}
		})
	}
}

func TestPutAndDeletePublish(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	type call struct {
		op         kv.Op
		key, value string
	}
	calls := []call{
		{kv.OpPut, "a", "1"},
		{kv.OpPut, "a", ""},
		{kv.OpDelete, "a", ""},
		{kv.OpPut, "b/\x00 é", strings.Repeat("v", 16)},
		{kv.OpDelete, "never", ""},
		{kv.OpPut, strings.Repeat("k", 8), "x"},
	}
	var versions []version.Version
	for _, c := range calls {
		var v version.Version
		var err error
		if c.op == kv.OpPut {
			v, err = f.svc.Put(ctx, c.key, c.value)
		} else {
			v, err = f.svc.Delete(ctx, c.key)
		}
		if err != nil {
			t.Fatalf("%v %q: %v", c.op, c.key, err)
		}
		if v.IsZero() {
			t.Fatalf("%v %q returned the zero version", c.op, c.key)
		}
		if len(versions) > 0 && !versions[len(versions)-1].Less(v) {
			t.Fatalf("%v %q returned %v after %v", c.op, c.key, v, versions[len(versions)-1])
		}
		versions = append(versions, v)
	}
	published := f.pub.Writes()
	if len(published) != len(calls) {
		t.Fatalf("published %d writes, want %d", len(published), len(calls))
	}
	for i, c := range calls {
		want := kv.Write{Op: c.op, Key: c.key, Value: c.value, Version: versions[i], AcceptedAt: acceptedAt}
		if published[i] != want {
			t.Errorf("write %d = %+v, want %+v", i, published[i], want)
		}
	}
}

func TestWriteValidationPublishesNothing(t *testing.T) {
	tests := []struct {
		name       string
		del        bool
		key, value string
		code       string
	}{
		{"put empty key", false, "", "v", "missing_key"},
		{"put key too long", false, strings.Repeat("k", 9), "v", "key_too_long"},
		{"put key invalid utf-8", false, "\xff", "v", "invalid_utf8"},
		{"put value too large", false, "k", strings.Repeat("v", 17), "value_too_large"},
		{"put value invalid utf-8", false, "k", "\xc3", "invalid_utf8"},
		{"delete empty key", true, "", "", "missing_key"},
		{"delete key too long", true, strings.Repeat("k", 9), "", "key_too_long"},
		{"delete key invalid utf-8", true, "a\xffb", "", "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			var v version.Version
			var err error
			if tt.del {
				v, err = f.svc.Delete(context.Background(), tt.key)
			} else {
				v, err = f.svc.Put(context.Background(), tt.key, tt.value)
			}
			wantCode(t, err, tt.code)
			if !v.IsZero() {
				t.Errorf("version = %v with a validation error, want zero", v)
			}
			if w := f.pub.Writes(); len(w) != 0 {
				t.Errorf("published %v, want nothing", w)
			}
		})
	}
}

func TestPublisherErrorIsUnavailable(t *testing.T) {
	for _, del := range []bool{false, true} {
		name := "put"
		if del {
			name = "delete"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.pub.Err = kvtest.ErrDown
			var v version.Version
			var err error
			if del {
				v, err = f.svc.Delete(context.Background(), "k")
			} else {
				v, err = f.svc.Put(context.Background(), "k", "v")
			}
			if !errors.Is(err, kv.ErrUnavailable) {
				t.Errorf("error = %v, want ErrUnavailable", err)
			}
			if !errors.Is(err, kvtest.ErrDown) {
				t.Errorf("error = %v, want the publisher's error kept in the chain", err)
			}
			if !v.IsZero() {
				t.Errorf("version = %v, want zero when the broker did not confirm", v)
			}
		})
	}
}
