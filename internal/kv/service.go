package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/singleflight"

	"github.com/kvfleet/kvfleet/internal/version"
)

// ErrCacheMiss is what a Cache returns when it holds nothing for a key.
var ErrCacheMiss = errors.New("cache miss")

// Cache is the read-through cache in front of the Store.
type Cache interface {
	// Get returns the cached state of a key (possibly a tombstone or a
	// not-found marker), or ErrCacheMiss.
	Get(ctx context.Context, key string) (Item, error)
	// Fill caches item unless the cache already holds the same or a newer
	// version of the key, so that a slow reader can never overwrite what a
	// consumer wrote after the reader's database read.
	Fill(ctx context.Context, item Item) error
}

// Store is the system of record.
type Store interface {
	// Get returns the stored state of a key (a tombstone has Deleted set),
	// or ErrNotFound when the key has no row.
	Get(ctx context.Context, key string) (Item, error)
}

// Publisher hands a write to the durable queue. It returns nil only once
// the broker has confirmed that it holds the write.
type Publisher interface {
	Publish(ctx context.Context, w Write) error
}

// Source tells a reader where a value came from.
type Source string

// The sources of a read, as the original system's clients know them.
const (
	SourceCache    Source = "redis"
	SourceDatabase Source = "database"
)

// Service is the API's view of the store: synchronous cached reads and
// asynchronous, versioned writes.
type Service struct {
	limits      Limits
	clock       *version.Clock
	cache       Cache
	store       Store
	publisher   Publisher
	now         func() time.Time
	readTimeout time.Duration

	reads     singleflight.Group
	fallbacks *prometheus.CounterVec
}

// ServiceConfig holds what a Service is built from.
type ServiceConfig struct {
	Limits    Limits
	Clock     *version.Clock
	Cache     Cache
	Store     Store
	Publisher Publisher
	Now       func() time.Time
	// ReadTimeout bounds the database read that fills the cache on a miss.
	// The read is shared by every request waiting for the same key, so it
	// runs on its own deadline rather than the first requester's.
	ReadTimeout time.Duration
	Registerer  prometheus.Registerer
}

// NewService builds a Service.
func NewService(c ServiceConfig) *Service {
	return &Service{
		limits:      c.Limits,
		clock:       c.Clock,
		cache:       c.Cache,
		store:       c.Store,
		publisher:   c.Publisher,
		now:         c.Now,
		readTimeout: c.ReadTimeout,
		fallbacks: promauto.With(c.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_read_fallbacks_total",
			Help: "Reads answered from the database, by reason: a cache miss or a cache error.",
		}, []string{"reason"}),
	}
}

// Limits returns the limits the service enforces.
func (s *Service) Limits() Limits { return s.limits }

// Get returns the latest known state of a key. A hit costs one cache round
// trip. On a miss or a cache failure it reads the database, once per key
// however many requests are waiting for it, and fills the cache.
func (s *Service) Get(ctx context.Context, key string) (Item, Source, error) {
	if err := s.limits.ValidateKey(key); err != nil {
		return Item{}, "", err
	}
	item, err := s.cache.Get(ctx, key)
	switch {
	case err == nil:
		return found(item, SourceCache)
	case errors.Is(err, ErrCacheMiss):
		s.fallbacks.WithLabelValues("miss").Inc()
	default:
		// The cache is down or failing over: the database still answers.
		s.fallbacks.WithLabelValues("cache_error").Inc()
	}

	shared, err, _ := s.reads.Do(key, func() (any, error) {
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.readTimeout)
		defer cancel()
		return s.readThrough(readCtx, key)
	})
	if err != nil {
		return Item{}, "", err
	}
	return found(shared.(Item), SourceDatabase)
}

// readThrough reads the database and fills the cache with what it found,
// including "deleted" and "never written", so that hot missing keys do not
// reach the database on every request.
func (s *Service) readThrough(ctx context.Context, key string) (Item, error) {
	item, err := s.store.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		item = Item{Key: key, Deleted: true}
	case err != nil:
		return Item{}, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	// A failed fill only costs a later miss; the cache counts its errors.
	_ = s.cache.Fill(ctx, item)
	return item, nil
}

func found(item Item, source Source) (Item, Source, error) {
	if item.Deleted {
		return Item{}, source, ErrNotFound
	}
	return item, source, nil
}

// Put accepts a write of value to key and returns its version once the
// broker has confirmed it. The write is applied later by a consumer.
func (s *Service) Put(ctx context.Context, key, value string) (version.Version, error) {
	if err := s.limits.ValidateKey(key); err != nil {
		return version.Version{}, err
	}
	if err := s.limits.ValidateValue(value); err != nil {
		return version.Version{}, err
	}
	return s.publish(ctx, Write{Op: OpPut, Key: key, Value: value})
}

// Delete accepts the deletion of key and returns the tombstone's version
// once the broker has confirmed it.
func (s *Service) Delete(ctx context.Context, key string) (version.Version, error) {
	if err := s.limits.ValidateKey(key); err != nil {
		return version.Version{}, err
	}
	return s.publish(ctx, Write{Op: OpDelete, Key: key})
}

func (s *Service) publish(ctx context.Context, w Write) (version.Version, error) {
	w.Version = s.clock.Next()
	w.AcceptedAt = s.now()
	if err := s.publisher.Publish(ctx, w); err != nil {
		return version.Version{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return w.Version, nil
}
