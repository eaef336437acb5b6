// Command kvfleet-consumer applies queued writes to the database and the
// cache. "kvfleet-consumer migrate" only brings the schema up to date;
// "kvfleet-consumer healthcheck" asks a running consumer whether it is
// consuming, for container healthchecks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/cache"
	"github.com/kvfleet/kvfleet/internal/config"
	"github.com/kvfleet/kvfleet/internal/consumer"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/store"
	"github.com/kvfleet/kvfleet/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvfleet-consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	mode := "run"
	if len(args) > 0 {
		mode = args[0]
	}
	if mode == "healthcheck" {
		url, err := config.HealthcheckURL(os.Getenv, "OPS_ADDR", ":9100", "/readyz")
		if err != nil {
			return err
		}
		return telemetry.Healthcheck(ctx, url)
	}
	if mode != "run" && mode != "migrate" {
		return fmt.Errorf("unknown mode %q (want run, migrate or healthcheck)", mode)
	}
	cfg, err := config.LoadConsumer(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := telemetry.NewLogger(os.Stdout, cfg.LogLevel, "consumer")
	reg := telemetry.NewRegistry()

	pool, err := store.OpenPool(ctx, cfg.Database.PoolConfig())
	if err != nil {
		return err
	}
	defer pool.Close()
	if mode == "migrate" || cfg.Migrate {
		err := store.MigrateWaiting(ctx, pool, cfg.MigrateWait, func(err error) {
			log.Warn("database not ready for migrations; retrying", "op", "migrate", "err", err)
		})
		if err != nil {
			return err
		}
		log.Info("schema is up to date")
		if mode == "migrate" {
			return nil
		}
	}
	log.Info("starting", "config", cfg)
	kvStore := store.New(pool, store.Options{QueryTimeout: cfg.Database.QueryTimeout, Attempts: 3, Backoff: 50 * time.Millisecond}, reg)
	redis := cache.NewClient(cfg.Redis.CacheConfig())
	defer redis.Close()
	kvCache := cache.New(redis, cfg.Cache.CacheOptions(), reg)

	applier := consumer.New(consumer.Config{
		Limits: cfg.Limits, BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, DrainTimeout: cfg.DrainTimeout,
		RetryMin: 50 * time.Millisecond, RetryMax: cfg.RetryMax, Transient: store.Transient, Now: time.Now, Logger: log,
	}, kvStore, kvCache, reg)
	subscriber := queue.NewSubscriber(queue.SubscriberConfig{
		Dialer: cfg.Broker.Dialer("kvfleet-consumer"), Topology: cfg.Broker.Topology(), Prefetch: cfg.Prefetch, Logger: log,
	}, reg)
	purger := consumer.NewPurger(consumer.Purger{
		Store: kvStore, Retention: cfg.TombstoneRetention, Interval: cfg.PurgeInterval,
		BatchLimit: 1000, Now: time.Now, Logger: log,
	}, reg)
	ops := telemetry.NewOpsServer(cfg.OpsAddr, reg, subscriber.Consuming)
	opsLn, err := telemetry.Listen(ops)
	if err != nil {
		return err
	}

	// On SIGTERM the subscriber stops taking messages and the consumer
	// finishes (or leaves unacknowledged) its batch; the operations server
	// goes last so that metrics stay readable until the end.
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	opsDone := make(chan error, 1)
	go func() { opsDone <- telemetry.Serve(opsCtx, ops, opsLn, cfg.ShutdownTimeout) }()
	var wg sync.WaitGroup
	wg.Go(func() { _ = purger.Run(ctx) })
	log.Info("consuming", "queue", cfg.Broker.Queue, "ops_addr", cfg.OpsAddr)
	err = subscriber.Run(ctx, applier.Handle)
	wg.Wait()
	stopOps()
	if opsErr := <-opsDone; err == nil {
		err = opsErr
	}
	log.Info("stopped", "err", err)
	return err
}
