// Package backing builds, from the configuration both binaries share, the
// clients of the services they stand on: the Redis cache, the database and
// the broker connection. It is the one place where configuration values
// become the adapters' own settings, so that internal/config stays a leaf
// and the two mains stay short.
package backing

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/cache"
	"github.com/kvfleet/kvfleet/internal/config"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/store"
)

// Services are the clients of one process. Close releases them.
type Services struct {
	Cache    *cache.Cache
	Store    *store.Store
	Broker   *queue.Connection
	Topology queue.Topology

	closers []func()
}

// Open builds the clients. None of them waits for its server: they connect
// lazily or in the background, so that a process starts while its
// dependencies are still coming up. name labels the broker connection in
// RabbitMQ's management UI.
func Open(ctx context.Context, c config.Common, name string, log *slog.Logger, reg prometheus.Registerer) (*Services, error) {
	pool, err := store.OpenPool(ctx, PoolConfig(c.Database))
	if err != nil {
		return nil, err
	}
	redis := cache.NewClient(CacheConfig(c.Redis))
	return &Services{
		Cache:    cache.New(redis, CacheOptions(c.Cache), reg),
		Store:    store.New(pool, store.Options{QueryTimeout: c.Database.QueryTimeout}, reg),
		Broker:   queue.NewConnection(Dialer(c.Broker, name), log, reg),
		Topology: Topology(c.Broker),
		closers:  []func(){pool.Close, func() { _ = redis.Close() }},
	}, nil
}

// Close closes the database pool and the Redis client. The broker
// connection ends with the context its publisher or subscriber runs under.
func (s *Services) Close() {
	for _, close := range s.closers {
		close()
	}
}

// CacheConfig returns the Redis client settings.
func CacheConfig(c config.Redis) cache.Config {
	return cache.Config{
		SentinelAddrs: c.SentinelAddrs, MasterName: c.MasterName, Addr: c.Addr,
		Password: c.Password, SentinelPassword: c.SentinelPassword,
		Timeout: c.Timeout, PoolSize: c.PoolSize,
	}
}

// CacheOptions returns the cache's entry lifetimes.
func CacheOptions(c config.Cache) cache.Options {
	return cache.Options{KeyPrefix: cache.DefaultKeyPrefix, TTL: c.TTL, NotFoundTTL: c.NotFoundTTL}
}

// PoolConfig returns the database pool settings.
func PoolConfig(c config.Database) store.PoolConfig {
	return store.PoolConfig{URL: c.URL, MaxConns: int32(c.MaxConns), ConnectTimeout: c.ConnectTimeout, MaxConnIdleTime: c.MaxConnIdleTime}
}

// Dialer returns a dialer over the broker's nodes.
func Dialer(c config.Broker, name string) *queue.Dialer {
	return &queue.Dialer{URLs: c.URLs, Timeout: c.DialTimeout, Heartbeat: c.Heartbeat, WriteTimeout: c.WriteTimeout, Name: name}
}

// Topology returns the queue names and arguments.
func Topology(c config.Broker) queue.Topology {
	return queue.Topology{Queue: c.Queue, DeadLetterExchange: c.DeadLetterExchange,
		DeadLetterQueue: c.DeadLetterQueue, DeliveryLimit: c.DeliveryLimit}
}
