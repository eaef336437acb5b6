// Command kvfleet-refserver is the benchmark's reference ceiling: the
// least a read can do in this fleet, one Gin handler doing one go-redis
// GET through the fleet's Sentinels, with no middleware. kvfleet-bench
// runs it in a container beside the API replicas and compares the fleet's
// cached reads with it. It seeds its own keys (with a TTL) at start.
//
// It names go-redis itself, not through internal/cache, on purpose: it
// measures what the stack costs without the application.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kvfleet-refserver:", err)
		os.Exit(1)
	}
}

type item struct {
	Key    string `json:"key_name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kvfleet-refserver", flag.ContinueOnError)
	addr := fs.String("addr", ":8000", "listen address")
	sentinels := fs.String("sentinels", "redis-sentinel-1:26379,redis-sentinel-2:26379,redis-sentinel-3:26379", "Sentinel addresses")
	master := fs.String("master", "kvfleet", "Sentinel master name")
	prefix := fs.String("prefix", "kvfleet-bench:ref:", "Redis key prefix")
	keyBase := fs.String("key-base", "bench/get/", "seeded keys are this and a number")
	keys := fs.Int("keys", 1000, "keys to seed")
	valueBytes := fs.Int("value-bytes", 64, "size of each seeded value")
	ttl := fs.Duration("ttl", 15*time.Minute, "lifetime of the seeded keys")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: *master, SentinelAddrs: strings.Split(*sentinels, ","),
		Password: os.Getenv("KVFLEET_REDIS_PASSWORD"), SentinelPassword: os.Getenv("KVFLEET_REDIS_SENTINEL_PASSWORD"),
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer rdb.Close()
	seedCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pipe := rdb.Pipeline()
	for i := range *keys {
		v := "ref:" + strconv.Itoa(i) + ":"
		pipe.Set(seedCtx, *prefix+*keyBase+strconv.Itoa(i), v+strings.Repeat(".", max(*valueBytes-len(v), 0)), *ttl)
	}
	if _, err := pipe.Exec(seedCtx); err != nil {
		return fmt.Errorf("seed: %w", err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		key := c.Query("key")
		v, err := rdb.Get(c.Request.Context(), *prefix+key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			c.JSON(http.StatusNotFound, gin.H{"detail": "Key not found", "code": "not_found"})
		case err != nil:
			c.JSON(http.StatusServiceUnavailable, gin.H{"detail": "redis unavailable", "code": "cache_unavailable"})
		default:
			c.JSON(http.StatusOK, item{Key: key, Value: v, Source: "redis"})
		}
	})
	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelShutdown()
	err := srv.Shutdown(shutdownCtx)
	<-errc // ErrServerClosed once Shutdown has begun
	return err
}
