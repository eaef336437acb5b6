package config

import (
	"github.com/kvfleet/kvfleet/internal/cache"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/store"
)

// The translations from configuration to the adapters' own settings, shared
// by both binaries.

// CacheConfig returns the Redis client settings.
func (c Redis) CacheConfig() cache.Config {
	return cache.Config{
		SentinelAddrs: c.SentinelAddrs, MasterName: c.MasterName, Addr: c.Addr,
		Password: c.Password, SentinelPassword: c.SentinelPassword,
		Timeout: c.Timeout, PoolSize: c.PoolSize,
	}
}

// CacheOptions returns the cache's entry lifetimes.
func (c Cache) CacheOptions() cache.Options {
	return cache.Options{KeyPrefix: cache.DefaultKeyPrefix, TTL: c.TTL, NotFoundTTL: c.NotFoundTTL}
}

// PoolConfig returns the database pool settings.
func (c Database) PoolConfig() store.PoolConfig {
	return store.PoolConfig{URL: c.URL, MaxConns: int32(c.MaxConns), ConnectTimeout: c.ConnectTimeout, MaxConnIdleTime: c.MaxConnIdleTime}
}

// Dialer returns a dialer over the broker's nodes; name labels the
// connection in the management UI.
func (c Broker) Dialer(name string) *queue.Dialer {
	return &queue.Dialer{URLs: c.URLs, Timeout: c.DialTimeout, Heartbeat: c.Heartbeat, Name: name}
}

// Topology returns the queue names and arguments.
func (c Broker) Topology() queue.Topology {
	return queue.Topology{Queue: c.Queue, DeadLetterExchange: c.DeadLetterExchange,
		DeadLetterQueue: c.DeadLetterQueue, DeliveryLimit: c.DeliveryLimit}
}
