// Package kvtest holds in-memory stand-ins for the kv package's
// dependencies, named by how they behave, for unit tests. They follow the
// same versioning rules as the real adapters: the store and the cache only
// ever move a key to a higher version.
package kvtest

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// ErrDown is what the failing stand-ins return.
var ErrDown = errors.New("kvtest: dependency is down")

// MemoryStore is a kv.Store and consumer.Store in memory.
type MemoryStore struct {
	mu    sync.Mutex
	items map[string]kv.Item
	// stale are the keys marked by MarkStale, at their recorded version.
	stale map[string]version.Version
	// Err, when set, is returned by every call.
	Err error
	// Gets counts Get calls, for singleflight assertions.
	Gets int
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{items: make(map[string]kv.Item), stale: make(map[string]version.Version)}
}

// SetErr makes every later call fail with err (nil heals it).
func (s *MemoryStore) SetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Err = err
}

// Get implements kv.Store.
func (s *MemoryStore) Get(_ context.Context, key string) (kv.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Gets++
	if s.Err != nil {
		return kv.Item{}, s.Err
	}
	item, ok := s.items[key]
	if !ok {
		return kv.Item{}, kv.ErrNotFound
	}
	return item, nil
}

// Apply writes each item unless a higher version is stored, like the SQL
// upsert (an equal version is written again).
func (s *MemoryStore) Apply(_ context.Context, items []kv.Item) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return nil, s.Err
	}
	applied := make([]bool, len(items))
	for i, item := range items {
		cur, ok := s.items[item.Key]
		if ok && item.Version.Less(cur.Version) {
			continue
		}
		if item.Deleted {
			item.Value = ""
		}
		s.items[item.Key] = item
		applied[i] = true
	}
	return applied, nil
}

// MarkStale records keys whose cache entry may be stale, like the SQL
// (a higher recorded version is kept).
func (s *MemoryStore) MarkStale(_ context.Context, items []kv.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	for _, item := range items {
		if cur, ok := s.stale[item.Key]; !ok || cur.Less(item.Version) {
			s.stale[item.Key] = item.Version
		}
	}
	return nil
}

// Stale returns up to limit marked keys as their current rows (a tombstone
// at the recorded version where the row is gone).
func (s *MemoryStore) Stale(_ context.Context, limit int) ([]kv.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return nil, s.Err
	}
	var out []kv.Item
	for key, v := range s.stale {
		if len(out) == limit {
			break
		}
		item, ok := s.items[key]
		if !ok {
			item = kv.Item{Key: key, Version: v, Deleted: true}
		}
		out = append(out, item)
	}
	return out, nil
}

// Unmark forgets marks at or below items' versions.
func (s *MemoryStore) Unmark(_ context.Context, items []kv.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	for _, item := range items {
		if cur, ok := s.stale[item.Key]; ok && !item.Version.Less(cur) {
			delete(s.stale, item.Key)
		}
	}
	return nil
}

// StaleKeys returns the marked keys and their recorded versions.
func (s *MemoryStore) StaleKeys() map[string]version.Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stale)
}

// Delete removes a row, as the tombstone purge does.
func (s *MemoryStore) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, key)
}

// Snapshot returns a copy of every stored item by key.
func (s *MemoryStore) Snapshot() map[string]kv.Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]kv.Item, len(s.items))
	for k, v := range s.items {
		out[k] = v
	}
	return out
}

// MemoryCache is a kv.Cache and consumer.Cache in memory with the
// compare-and-set rule of the Redis script (no TTLs).
type MemoryCache struct {
	mu      sync.Mutex
	entries map[string]kv.Item
	// Err, when set, is returned by every call.
	Err error
}

// NewMemoryCache returns an empty cache.
func NewMemoryCache() *MemoryCache { return &MemoryCache{entries: make(map[string]kv.Item)} }

// SetErr makes every later call fail with err (nil heals it).
func (c *MemoryCache) SetErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Err = err
}

// Get implements kv.Cache.
func (c *MemoryCache) Get(_ context.Context, key string) (kv.Item, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return kv.Item{}, c.Err
	}
	item, ok := c.entries[key]
	if !ok {
		return kv.Item{}, kv.ErrCacheMiss
	}
	return item, nil
}

// Fill implements kv.Cache.
func (c *MemoryCache) Fill(_ context.Context, item kv.Item) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return c.Err
	}
	c.setIfNewer(item)
	return nil
}

// Update implements consumer.Cache.
func (c *MemoryCache) Update(_ context.Context, items []kv.Item) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return c.Err
	}
	for _, item := range items {
		c.setIfNewer(item)
	}
	return nil
}

func (c *MemoryCache) setIfNewer(item kv.Item) {
	cur, ok := c.entries[item.Key]
	if ok && !cur.Version.Less(item.Version) {
		return
	}
	c.entries[item.Key] = item
}

// Delete drops a key's entry, as an expiry or eviction would.
func (c *MemoryCache) Delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// Entry returns a key's cached item, if any.
func (c *MemoryCache) Entry(key string) (kv.Item, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	item, ok := c.entries[key]
	return item, ok
}

// RecordingPublisher is a kv.Publisher that keeps what it is given.
type RecordingPublisher struct {
	mu     sync.Mutex
	writes []kv.Write
	// Err, when set, is returned instead of recording.
	Err error
}

// Publish implements kv.Publisher.
func (p *RecordingPublisher) Publish(_ context.Context, w kv.Write) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Err != nil {
		return p.Err
	}
	p.writes = append(p.writes, w)
	return nil
}

// Writes returns a copy of the writes published so far.
func (p *RecordingPublisher) Writes() []kv.Write {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]kv.Write(nil), p.writes...)
}

// Pinger answers Ping with Err.
type Pinger struct{ Err error }

// Ping implements httpapi.Pinger.
func (p Pinger) Ping(context.Context) error { return p.Err }

// Broker reports a fixed connection state.
type Broker struct{ Up bool }

// Connected implements httpapi.Broker.
func (b Broker) Connected() bool { return b.Up }

// V returns a version for tests: hlc with node 1.
func V(hlc uint64) version.Version { return version.Version{HLC: hlc, Node: 1} }
