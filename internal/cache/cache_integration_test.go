package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/kvfleet/kvfleet/internal/cache"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/testserver"
)

func newSentinelCache(t *testing.T, rs *testserver.RedisSet, ttl time.Duration) (*cache.Cache, redis.UniversalClient, *prometheus.Registry) {
	t.Helper()
	client := cache.NewClient(cache.Config{
		SentinelAddrs: rs.SentinelAddrs, MasterName: rs.MasterName,
		Password: rs.Password, SentinelPassword: rs.SentinelPassword, Timeout: time.Second,
	})
	t.Cleanup(func() { client.Close() })
	reg := prometheus.NewRegistry()
	return cache.New(client, cache.Options{KeyPrefix: "kv:", TTL: ttl, NotFoundTTL: ttl / 10}, reg), client, reg
}

// TestRedisSentinel runs the cache against a real Redis master, replica
// and three Sentinels.
func TestRedisSentinel(t *testing.T) {
	rs := testserver.MustRedis(t)
	ctx := t.Context()
	c, client, reg := newSentinelCache(t, rs, time.Minute)

	t.Run("contract", func(t *testing.T) {
		kvtest.RunCacheContract(t, func(t *testing.T) kvtest.Cache {
			if err := client.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			return c
		})
	})

	t.Run("entries expire after their TTL", func(t *testing.T) {
		short, _, _ := newSentinelCache(t, rs, 10*time.Second)
		if err := short.Update(ctx, []kv.Item{{Key: "ttl", Value: "v", Version: kvtest.V(1)}}); err != nil {
			t.Fatal(err)
		}
		if err := short.Fill(ctx, kv.Item{Key: "ttl-missing", Deleted: true}); err != nil {
			t.Fatal(err)
		}
		ttl := client.PTTL(ctx, "kv:ttl").Val()
		if ttl <= 0 || ttl > 10*time.Second {
			t.Fatalf("PTTL of a value = %v, want (0, 10s]", ttl)
		}
		markerTTL := client.PTTL(ctx, "kv:ttl-missing").Val()
		if markerTTL <= 0 || markerTTL > time.Second {
			t.Fatalf("PTTL of a not-found marker = %v, want (0, 1s]", markerTTL)
		}
	})

	t.Run("a foreign value under a cache key is a miss that a fill repairs", func(t *testing.T) {
		if err := client.Set(ctx, "kv:foreign", "x", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, "foreign"); !errors.Is(err, kv.ErrCacheMiss) {
			t.Fatalf("Get of a corrupt entry = %v, want ErrCacheMiss", err)
		}
		item := kv.Item{Key: "foreign", Value: "v", Version: kvtest.V(1)}
		if err := c.Fill(ctx, item); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, "foreign"); err != nil || got != item {
			t.Fatalf("Get after repair = %+v, %v", got, err)
		}
	})

	t.Run("update reloads the script on a server that lost it", func(t *testing.T) {
		if err := client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		item := kv.Item{Key: "after-flush", Value: "v", Version: kvtest.V(1)}
		if err := c.Update(ctx, []kv.Item{item}); err != nil {
			t.Fatalf("Update after SCRIPT FLUSH: %v", err)
		}
		if got, err := c.Get(ctx, "after-flush"); err != nil || got != item {
			t.Fatalf("Get = %+v, %v", got, err)
		}
	})

	t.Run("lookups are counted", func(t *testing.T) {
		lookups, err := testutil.GatherAndCount(reg, "kvfleet_cache_lookups_total")
		if err != nil || lookups == 0 {
			t.Fatalf("kvfleet_cache_lookups_total series = %d, %v", lookups, err)
		}
	})

	// Last, since it changes the topology: the cache follows a failover.
	t.Run("follows a Sentinel failover", func(t *testing.T) {
		before := kv.Item{Key: "failover", Value: "before", Version: kvtest.V(1)}
		if err := c.Update(ctx, []kv.Item{before}); err != nil {
			t.Fatal(err)
		}
		if err := client.Do(ctx, "WAIT", 1, 1000).Err(); err != nil {
			t.Fatal(err)
		}
		old, err := rs.CurrentMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.KillMaster(); err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := rs.WaitForFailover(waitCtx, old); err != nil {
			t.Fatal(err)
		}
		after := kv.Item{Key: "failover", Value: "after", Version: kvtest.V(2)}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err = c.Update(ctx, []kv.Item{after})
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Update after failover: %v", err)
		}
		if got, err := c.Get(ctx, "failover"); err != nil || got != after {
			t.Fatalf("Get after failover = %+v, %v", got, err)
		}
	})
}
