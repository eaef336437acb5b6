// Command kvfleet-api is the stateless REST API: it serves reads from Redis
// and the database, and publishes writes to RabbitMQ. "kvfleet-api
// healthcheck" asks a running API whether it is ready, for container
// healthchecks.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/cache"
	"github.com/kvfleet/kvfleet/internal/config"
	"github.com/kvfleet/kvfleet/internal/httpapi"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/store"
	"github.com/kvfleet/kvfleet/internal/telemetry"
	"github.com/kvfleet/kvfleet/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvfleet-api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		url, err := config.HealthcheckURL(os.Getenv, "HTTP_ADDR", ":8000", "/readyz")
		if err != nil {
			return err
		}
		return telemetry.Healthcheck(ctx, url)
	}
	cfg, err := config.LoadAPI(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := telemetry.NewLogger(os.Stdout, cfg.LogLevel, "api")
	log.Info("starting", "config", cfg)
	reg := telemetry.NewRegistry()

	redis := cache.NewClient(cfg.Redis.CacheConfig())
	defer redis.Close()
	kvCache := cache.New(redis, cfg.Cache.CacheOptions(), reg)
	pool, err := store.OpenPool(ctx, cfg.Database.PoolConfig())
	if err != nil {
		return err
	}
	defer pool.Close()
	kvStore := store.New(pool, store.Options{QueryTimeout: cfg.Database.QueryTimeout, Attempts: 2, Backoff: 50 * time.Millisecond}, reg)
	publisher := queue.NewPublisher(queue.PublisherConfig{
		Dialer: cfg.Broker.Dialer("kvfleet-api"), Topology: cfg.Broker.Topology(),
		Channels: cfg.PublisherChannels, Timeout: cfg.PublishTimeout, Logger: log,
	}, reg)
	service := kv.NewService(kv.ServiceConfig{
		Limits: cfg.Limits, Clock: version.NewClock(cfg.NodeID, time.Now),
		Cache: kvCache, Store: kvStore, Publisher: publisher,
		Now: time.Now, ReadTimeout: cfg.ReadTimeout, Registerer: reg,
	})
	readiness := &httpapi.Readiness{}
	hostname, _ := os.Hostname()
	api := &http.Server{Addr: cfg.HTTPAddr, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		Handler: httpapi.New(httpapi.Config{
			KV: service, MaxBodyBytes: cfg.MaxBodyBytes, Cache: kvCache, Store: kvStore, Broker: publisher,
			Readiness: readiness, HealthTimeout: cfg.HealthTimeout, ServedBy: hostname,
			Now: time.Now, Logger: log, Registerer: reg,
		})}
	ops := telemetry.NewOpsServer(cfg.OpsAddr, reg, readiness.Ready)
	apiLn, err := telemetry.Listen(api)
	if err != nil {
		return err
	}
	opsLn, err := telemetry.Listen(ops)
	if err != nil {
		apiLn.Close()
		return err
	}

	// Shutdown runs in reverse order of start: readiness, then the API
	// (which waits for in-flight publishes and their confirms), then the
	// broker connection, then the operations server.
	background, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var wg sync.WaitGroup
	wg.Go(func() { _ = publisher.Run(background) })
	opsDone := make(chan error, 1)
	go func() { opsDone <- telemetry.Serve(background, ops, opsLn, cfg.ShutdownTimeout) }()

	readiness.SetReady(true)
	log.Info("serving", "http_addr", cfg.HTTPAddr, "ops_addr", cfg.OpsAddr)
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAPI()
	context.AfterFunc(ctx, func() {
		readiness.SetReady(false)
		log.Info("draining", "delay", cfg.DrainDelay)
		time.AfterFunc(cfg.DrainDelay, stopAPI)
	})
	err = telemetry.Serve(apiCtx, api, apiLn, cfg.ShutdownTimeout)
	stopBackground()
	wg.Wait()
	if opsErr := <-opsDone; err == nil {
		err = opsErr
	}
	log.Info("stopped", "err", err)
	return err
}
