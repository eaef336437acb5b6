package kvtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// Store is what the store contract exercises: the read side the API uses
// and the write side the consumer uses.
type Store interface {
	Get(ctx context.Context, key string) (kv.Item, error)
	Apply(ctx context.Context, items []kv.Item) ([]bool, error)
}

// RepairLog is what the repair-log contract exercises: the store's record
// of keys whose cache entry may be stale.
type RepairLog interface {
	Apply(ctx context.Context, items []kv.Item) ([]bool, error)
	MarkStale(ctx context.Context, items []kv.Item) error
	Stale(ctx context.Context, limit int) ([]kv.Item, error)
	Unmark(ctx context.Context, items []kv.Item) error
}

// RunRepairLogContract runs the behaviour every RepairLog must have. purge
// removes a key's row, as the tombstone purge does.
func RunRepairLogContract(t *testing.T, newLog func(t *testing.T) (RepairLog, func(key string))) {
	ctx := context.Background()
	stale := func(t *testing.T, l RepairLog) map[string]kv.Item {
		t.Helper()
		items, err := l.Stale(ctx, 1000)
		if err != nil {
			t.Fatalf("Stale: %v", err)
		}
		out := make(map[string]kv.Item, len(items))
		for _, item := range items {
			out[item.Key] = item
		}
		return out
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("marked keys come back as their current rows", func(t *testing.T) {
		l, _ := newLog(t)
		_, err := l.Apply(ctx, []kv.Item{put("a", "a2", 2), tombstone("b", 3), put("c", "c1", 1)})
		must(t, err)
		must(t, l.MarkStale(ctx, []kv.Item{put("a", "a1", 1), tombstone("b", 3)}))
		got := stale(t, l)
		want := map[string]kv.Item{"a": put("a", "a2", 2), "b": tombstone("b", 3)}
		if len(got) != len(want) || got["a"] != want["a"] || got["b"] != want["b"] {
			t.Fatalf("Stale = %v, want %v", got, want)
		}
	})
	t.Run("a purged row comes back as a tombstone at the marked version", func(t *testing.T) {
		l, purge := newLog(t)
		_, err := l.Apply(ctx, []kv.Item{tombstone("gone", 4)})
		must(t, err)
		must(t, l.MarkStale(ctx, []kv.Item{tombstone("gone", 4)}))
		purge("gone")
		if got := stale(t, l)["gone"]; got != tombstone("gone", 4) {
			t.Fatalf("Stale[gone] = %+v, want %+v", got, tombstone("gone", 4))
		}
	})
	t.Run("unmark keeps a newer mark", func(t *testing.T) {
		l, _ := newLog(t)
		_, err := l.Apply(ctx, []kv.Item{put("k", "v5", 5), put("j", "j1", 1)})
		must(t, err)
		must(t, l.MarkStale(ctx, []kv.Item{put("k", "v5", 5), put("j", "j1", 1)}))
		repairing := stale(t, l)
		// A newer write of k is committed and marked while the repair runs.
		_, err = l.Apply(ctx, []kv.Item{put("k", "v7", 7)})
		must(t, err)
		must(t, l.MarkStale(ctx, []kv.Item{put("k", "v7", 7)}))
		must(t, l.Unmark(ctx, []kv.Item{repairing["k"], repairing["j"]}))
		got := stale(t, l)
		if len(got) != 1 || got["k"] != put("k", "v7", 7) {
			t.Fatalf("Stale after unmark = %v, want only k at v7", got)
		}
		must(t, l.Unmark(ctx, []kv.Item{got["k"]}))
		if got := stale(t, l); len(got) != 0 {
			t.Fatalf("Stale after the last unmark = %v, want none", got)
		}
	})
	t.Run("an older mark does not lower a newer one", func(t *testing.T) {
		l, _ := newLog(t)
		must(t, l.MarkStale(ctx, []kv.Item{put("k", "", 9)}))
		must(t, l.MarkStale(ctx, []kv.Item{put("k", "", 2)}))
		// Unmarking at version 2 must not forget the mark at 9.
		must(t, l.Unmark(ctx, []kv.Item{put("k", "", 2)}))
		if _, ok := stale(t, l)["k"]; !ok {
			t.Fatal("the mark at version 9 was lowered or forgotten")
		}
	})
	t.Run("limit and awkward keys", func(t *testing.T) {
		l, _ := newLog(t)
		var items []kv.Item
		for i, key := range awkwardKeys {
			items = append(items, put(key, "x", uint64(i+1)))
		}
		_, err := l.Apply(ctx, items)
		must(t, err)
		must(t, l.MarkStale(ctx, items))
		some, err := l.Stale(ctx, 3)
		must(t, err)
		if len(some) != 3 {
			t.Fatalf("Stale(limit 3) returned %d keys", len(some))
		}
		all := stale(t, l)
		for _, item := range items {
			if all[item.Key] != item {
				t.Errorf("Stale[%q] = %+v, want %+v", item.Key, all[item.Key], item)
			}
		}
	})
}

// Cache is what the cache contract exercises.
type Cache interface {
	Get(ctx context.Context, key string) (kv.Item, error)
	Fill(ctx context.Context, item kv.Item) error
	Update(ctx context.Context, items []kv.Item) error
}

func put(key, value string, hlc uint64) kv.Item {
	return kv.Item{Key: key, Value: value, Version: V(hlc)}
}

func tombstone(key string, hlc uint64) kv.Item {
	return kv.Item{Key: key, Version: V(hlc), Deleted: true}
}

// awkwardKeys are keys that must be stored byte for byte.
var awkwardKeys = []string{"a/b", "a%2Fb", "a b", "ключ", "😀", "?", "&", "#", "+", "nul\x00byte", `"quoted"`, strings.Repeat("k", 1024)}

// RunStoreContract runs the behaviour every Store must have against the
// stores that newStore returns (each call a fresh, empty store).
func RunStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	apply := func(t *testing.T, s Store, items ...kv.Item) []bool {
		t.Helper()
		applied, err := s.Apply(ctx, items)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		return applied
	}
	want := func(t *testing.T, s Store, key string, wantItem kv.Item) {
		t.Helper()
		got, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		if got != wantItem {
			t.Fatalf("Get(%q) = %+v, want %+v", key, got, wantItem)
		}
	}

	t.Run("never written is not found", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
	})
	t.Run("higher version wins, lower is refused, equal is rewritten", func(t *testing.T) {
		s := newStore(t)
		if got := apply(t, s, put("k", "v5", 5)); !got[0] {
			t.Fatal("first write not applied")
		}
		if got := apply(t, s, put("k", "v3", 3)); got[0] {
			t.Fatal("older write applied")
		}
		want(t, s, "k", put("k", "v5", 5))
		if got := apply(t, s, put("k", "v5", 5)); !got[0] {
			t.Fatal("redelivered write not reported as applied")
		}
		want(t, s, "k", put("k", "v5", 5))
		apply(t, s, put("k", "v9", 9))
		want(t, s, "k", put("k", "v9", 9))
	})
	t.Run("tombstone blocks older puts and yields to newer ones", func(t *testing.T) {
		s := newStore(t)
		apply(t, s, put("k", "v1", 1), put("other", "o", 1))
		apply(t, s, tombstone("k", 2))
		want(t, s, "k", tombstone("k", 2))
		if got := apply(t, s, put("k", "late", 1)); got[0] {
			t.Fatal("an older put resurrected a deleted key")
		}
		want(t, s, "k", tombstone("k", 2))
		apply(t, s, put("k", "back", 3))
		want(t, s, "k", put("k", "back", 3))
		want(t, s, "other", put("other", "o", 1))
	})
	t.Run("node id breaks ties between equal clocks", func(t *testing.T) {
		s := newStore(t)
		low := kv.Item{Key: "k", Value: "low", Version: version.Version{HLC: 7, Node: 1}}
		high := kv.Item{Key: "k", Value: "high", Version: version.Version{HLC: 7, Node: 2}}
		apply(t, s, high)
		if got := apply(t, s, low); got[0] {
			t.Fatal("lower node id won a tie")
		}
		want(t, s, "k", high)
	})
	t.Run("batch reports each item", func(t *testing.T) {
		s := newStore(t)
		apply(t, s, put("a", "a5", 5), put("b", "b5", 5))
		got := apply(t, s, put("a", "a4", 4), put("b", "b6", 6), put("c", "c1", 1))
		if got[0] || !got[1] || !got[2] {
			t.Fatalf("applied = %v, want [false true true]", got)
		}
	})
	t.Run("keys and values are byte exact", func(t *testing.T) {
		s := newStore(t)
		values := []string{"", "nul\x00in value", "ключ=значение", strings.Repeat("v", 1<<20)}
		for i, key := range awkwardKeys {
			item := put(key, values[i%len(values)], uint64(i+1))
			apply(t, s, item)
			want(t, s, key, item)
		}
	})
	t.Run("shuffled duplicated replay ends in the highest versions", func(t *testing.T) {
		s := newStore(t)
		rng := rand.New(rand.NewPCG(1, 2))
		var log []kv.Write
		latest := map[string]kv.Item{}
		for i := range 300 {
			key := []string{"x", "y", "z", "w"}[rng.IntN(4)]
			w := kv.Write{Op: kv.OpPut, Key: key, Value: key + "-" + string(rune('a'+i%26)), Version: V(uint64(i + 1))}
			if rng.IntN(4) == 0 {
				w = kv.Write{Op: kv.OpDelete, Key: key, Version: V(uint64(i + 1))}
			}
			log = append(log, w)
			latest[key] = w.Item()
		}
		replay := append(append([]kv.Write(nil), log...), log[:150]...) // redeliveries
		rng.Shuffle(len(replay), func(i, j int) { replay[i], replay[j] = replay[j], replay[i] })
		for start := 0; start < len(replay); start += 37 {
			batch := kv.Newest(replay[start:min(start+37, len(replay))])
			items := make([]kv.Item, len(batch))
			for i, w := range batch {
				items[i] = w.Item()
			}
			apply(t, s, items...)
		}
		for key, item := range latest {
			want(t, s, key, item)
		}
	})
}

// RunCacheContract runs the behaviour every Cache must have against the
// caches that newCache returns (each call a fresh, empty cache).
func RunCacheContract(t *testing.T, newCache func(t *testing.T) Cache) {
	ctx := context.Background()
	want := func(t *testing.T, c Cache, key string, wantItem kv.Item) {
		t.Helper()
		got, err := c.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		if got != wantItem {
			t.Fatalf("Get(%q) = %+v, want %+v", key, got, wantItem)
		}
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("empty is a miss", func(t *testing.T) {
		c := newCache(t)
		if _, err := c.Get(ctx, "missing"); !errors.Is(err, kv.ErrCacheMiss) {
			t.Fatalf("Get = %v, want ErrCacheMiss", err)
		}
	})
	t.Run("fill never lowers or replaces an equal version", func(t *testing.T) {
		c := newCache(t)
		must(t, c.Fill(ctx, put("k", "v5", 5)))
		must(t, c.Fill(ctx, put("k", "v4", 4)))
		want(t, c, "k", put("k", "v5", 5))
		must(t, c.Fill(ctx, put("k", "other", 5)))
		want(t, c, "k", put("k", "v5", 5))
	})
	t.Run("a stale fill after a consumer update is refused", func(t *testing.T) {
		c := newCache(t)
		// The reader read v1 from the database before the consumer committed v2.
		readerSaw := put("k", "v1", 1)
		must(t, c.Update(ctx, []kv.Item{put("k", "v2", 2)}))
		must(t, c.Fill(ctx, readerSaw))
		want(t, c, "k", put("k", "v2", 2))
	})
	t.Run("tombstones are versioned entries", func(t *testing.T) {
		c := newCache(t)
		must(t, c.Update(ctx, []kv.Item{put("k", "v1", 1)}))
		must(t, c.Update(ctx, []kv.Item{tombstone("k", 2)}))
		want(t, c, "k", tombstone("k", 2))
		must(t, c.Fill(ctx, put("k", "v1", 1)))
		want(t, c, "k", tombstone("k", 2))
		must(t, c.Update(ctx, []kv.Item{put("k", "v3", 3)}))
		want(t, c, "k", put("k", "v3", 3))
	})
	t.Run("a not-found marker yields to any write", func(t *testing.T) {
		c := newCache(t)
		marker := kv.Item{Key: "k", Deleted: true}
		must(t, c.Fill(ctx, marker))
		want(t, c, "k", marker)
		must(t, c.Update(ctx, []kv.Item{put("k", "first", 1)}))
		want(t, c, "k", put("k", "first", 1))
	})
	t.Run("batch update keeps the newer of each", func(t *testing.T) {
		c := newCache(t)
		must(t, c.Update(ctx, []kv.Item{put("a", "a5", 5)}))
		must(t, c.Update(ctx, []kv.Item{put("a", "a4", 4), put("b", "b1", 1)}))
		want(t, c, "a", put("a", "a5", 5))
		want(t, c, "b", put("b", "b1", 1))
	})
	t.Run("keys and values are byte exact", func(t *testing.T) {
		c := newCache(t)
		values := []string{"", "nul\x00in value", "ключ=значение", strings.Repeat("v", 1<<20)}
		for i, key := range awkwardKeys {
			item := put(key, values[i%len(values)], uint64(i+1))
			must(t, c.Update(ctx, []kv.Item{item}))
			want(t, c, key, item)
		}
	})
}
