// Package cache is the Redis read cache, reached through Sentinel so that it
// follows a failover by itself. Every entry carries the version of the write
// it holds, and every write to the cache is a compare-and-set in a Lua
// script: an entry only ever moves to a higher version. That is what makes
// the classic stale fill (a reader misses, reads v1 from the database, a
// consumer commits v2 and caches it, the reader then caches v1) impossible.
package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// setIfNewer stores ARGV[1] under KEYS[1] with a TTL of ARGV[2] ms unless the
// current entry's version (its first 16 bytes) is the same or higher.
// Versions are compared byte by byte because Lua numbers cannot hold 64 bits
// and Lua's string comparison follows the server's locale.
var setIfNewer = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and #cur >= 16 then
  local new = ARGV[1]
  local newer = false
  for i = 1, 16 do
    local a, b = string.byte(cur, i), string.byte(new, i)
    if a < b then newer = true break end
    if a > b then return 0 end
  end
  if not newer then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Config says how to reach Redis and how long entries live.
type Config struct {
	// SentinelAddrs, when set, are the Sentinels to ask for the master
	// named MasterName. Otherwise Addr is used directly (a single Redis,
	// for development).
	SentinelAddrs    []string
	MasterName       string
	Addr             string
	Password         string
	SentinelPassword string
	// Timeout bounds dialing and each command.
	Timeout time.Duration
	// PoolSize is the number of connections per process (0: go-redis' default).
	PoolSize int
}

// NewClient returns a go-redis client for cfg: a failover client over
// Sentinel, or a plain client for a single address.
func NewClient(cfg Config) redis.UniversalClient {
	if len(cfg.SentinelAddrs) > 0 {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       cfg.MasterName,
			SentinelAddrs:    cfg.SentinelAddrs,
			SentinelPassword: cfg.SentinelPassword,
			Password:         cfg.Password,
			DialTimeout:      cfg.Timeout,
			ReadTimeout:      cfg.Timeout,
			WriteTimeout:     cfg.Timeout,
			PoolSize:         cfg.PoolSize,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr:         cfg.Addr,
		Password:     cfg.Password,
		DialTimeout:  cfg.Timeout,
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		PoolSize:     cfg.PoolSize,
	})
}

// DefaultKeyPrefix namespaces the cache entries in Redis.
const DefaultKeyPrefix = "kv:"

// Options tune the cache.
type Options struct {
	// KeyPrefix namespaces the cache's keys in Redis.
	KeyPrefix string
	// TTL bounds how long an entry lives, and so how stale the cache can be
	// after a failover loses a recent update.
	TTL time.Duration
	// NotFoundTTL is the shorter life of a "never written" marker.
	NotFoundTTL time.Duration
}

// Cache implements kv.Cache on Redis.
type Cache struct {
	client redis.UniversalClient
	opts   Options

	lookups  *prometheus.CounterVec
	writes   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns a Cache that uses client.
func New(client redis.UniversalClient, opts Options, reg prometheus.Registerer) *Cache {
	f := promauto.With(reg)
	return &Cache{
		client: client,
		opts:   opts,
		lookups: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_cache_lookups_total",
			Help: "Cache lookups by result: hit, miss or error.",
		}, []string{"result"}),
		writes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_cache_writes_total",
			Help: "Versioned cache writes by origin (fill by a reader, update by a consumer) and result (stored, kept: a same or newer version was there, error).",
		}, []string{"origin", "result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kvfleet_cache_request_duration_seconds",
			Help:    "Latency of cache round trips by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op"}),
	}
}

func (c *Cache) redisKey(key string) string { return c.opts.KeyPrefix + key }

// Get implements kv.Cache.
func (c *Cache) Get(ctx context.Context, key string) (kv.Item, error) {
	start := time.Now()
	raw, err := c.client.Get(ctx, c.redisKey(key)).Bytes()
	c.duration.WithLabelValues("get").Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, redis.Nil):
		c.lookups.WithLabelValues("miss").Inc()
		return kv.Item{}, kv.ErrCacheMiss
	case err != nil:
		c.lookups.WithLabelValues("error").Inc()
		return kv.Item{}, fmt.Errorf("cache: get: %w", err)
	}
	item, err := decodeEntry(key, raw)
	if err != nil {
		c.lookups.WithLabelValues("error").Inc()
		return kv.Item{}, kv.ErrCacheMiss
	}
	c.lookups.WithLabelValues("hit").Inc()
	return item, nil
}

// Fill implements kv.Cache: it caches what a reader found in the database,
// unless a consumer has meanwhile cached the same or a newer version.
func (c *Cache) Fill(ctx context.Context, item kv.Item) error {
	start := time.Now()
	stored, err := setIfNewer.Run(ctx, c.client, []string{c.redisKey(item.Key)},
		encodeEntry(item), c.ttlFor(item).Milliseconds()).Int()
	c.duration.WithLabelValues("fill").Observe(time.Since(start).Seconds())
	c.countWrite("fill", stored, err)
	if err != nil {
		return fmt.Errorf("cache: fill: %w", err)
	}
	return nil
}

// Update caches the state that a consumer has just committed for each item,
// in one pipelined round trip. Like Fill, it never lowers an entry's
// version. It returns an error if any item could not be written, since the
// consumer must not acknowledge a write whose cache update failed.
func (c *Cache) Update(ctx context.Context, items []kv.Item) error {
	if len(items) == 0 {
		return nil
	}
	start := time.Now()
	err := c.update(ctx, items)
	if isNoScript(err) {
		// A Redis that has just been promoted, or restarted, has not seen the
		// script yet; Run loads it, and the batch is sent once more.
		if err = setIfNewer.Load(ctx, c.client).Err(); err == nil {
			err = c.update(ctx, items)
		}
	}
	c.duration.WithLabelValues("update").Observe(time.Since(start).Seconds())
	if err != nil {
		c.writes.WithLabelValues("update", "error").Add(float64(len(items)))
		return fmt.Errorf("cache: update %d items: %w", len(items), err)
	}
	return nil
}

func (c *Cache) update(ctx context.Context, items []kv.Item) error {
	pipe := c.client.Pipeline()
	cmds := make([]*redis.Cmd, len(items))
	for i, item := range items {
		cmds[i] = setIfNewer.EvalSha(ctx, pipe, []string{c.redisKey(item.Key)},
			encodeEntry(item), c.ttlFor(item).Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for _, cmd := range cmds {
		stored, err := cmd.Int()
		c.countWrite("update", stored, err)
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

func (c *Cache) countWrite(origin string, stored int, err error) {
	switch {
	case err != nil:
		c.writes.WithLabelValues(origin, "error").Inc()
	case stored == 1:
		c.writes.WithLabelValues(origin, "stored").Inc()
	default:
		c.writes.WithLabelValues(origin, "kept").Inc()
	}
}

func (c *Cache) ttlFor(item kv.Item) time.Duration {
	if item.Version.IsZero() {
		return c.opts.NotFoundTTL
	}
	return c.opts.TTL
}

// Ping checks that the current master answers.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cache: ping: %w", err)
	}
	return nil
}
