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

	"github.com/kvfleet/kvfleet/cmd/internal/backing"
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
	switch mode {
	case "healthcheck":
		url, err := config.HealthcheckURL(os.Getenv, "OPS_ADDR", ":9100", "/readyz")
		if err != nil {
			return err
		}
		return telemetry.Healthcheck(ctx, url)
	case "run", "migrate":
	default:
		return fmt.Errorf("unknown mode %q (want run, migrate or healthcheck)", mode)
	}
	cfg, err := config.LoadConsumer(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := telemetry.NewLogger(os.Stdout, cfg.LogLevel, "consumer")
	log.Info("starting", "mode", mode, "config", cfg)
	reg := telemetry.NewRegistry()
	deps, err := backing.Open(ctx, cfg.Common, "kvfleet-consumer", log, reg)
	if err != nil {
		return err
	}
	defer deps.Close()
	if mode == "migrate" || cfg.Migrate {
		err := deps.Store.Migrate(ctx, cfg.MigrateWait, func(err error) {
			log.Warn("database not ready for migrations; retrying", "op", "migrate", "err", err)
		})
		if err != nil || mode == "migrate" {
			return err
		}
		log.Info("schema is up to date")
	}
	applier := consumer.New(consumer.Config{BatchSize: cfg.BatchSize, BatchBytes: cfg.BatchBytes, BatchWait: cfg.BatchWait,
		DrainTimeout: cfg.DrainTimeout, RetryMin: 50 * time.Millisecond, RetryMax: cfg.RetryMax, RowError: store.RowError,
		TombstoneRetention: cfg.TombstoneRetention, MaxClockSkew: cfg.MaxClockSkew, Now: time.Now, Logger: log}, deps.Store, deps.Cache, reg)
	subscriber := queue.NewSubscriber(queue.SubscriberConfig{Connection: deps.Broker, Topology: deps.Topology,
		Prefetch: cfg.Prefetch, PrefetchBytes: cfg.PrefetchBytes, Limits: cfg.Limits, Logger: log})
	purger := consumer.NewPurger(consumer.Purger{Store: deps.Store, Retention: cfg.TombstoneRetention,
		Interval: cfg.PurgeInterval, BatchLimit: 1000, Now: time.Now, Logger: log}, reg)
	repairer := consumer.NewRepairer(consumer.Repairer{Log: deps.Store, Cache: deps.Cache,
		Interval: cfg.RepairInterval, BatchLimit: 500, Logger: log}, reg)
	ops := telemetry.NewOpsServer(cfg.OpsAddr, reg, subscriber.Consuming)
	lns, err := telemetry.Listen(ops)
	if err != nil {
		return err
	}

	// On SIGTERM the subscriber stops taking messages and the consumer
	// finishes (or leaves unsettled) its batch; the ops server goes last.
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	var opsErr error
	var wg sync.WaitGroup
	wg.Go(func() { opsErr = telemetry.Serve(opsCtx, ops, lns[0], cfg.ShutdownTimeout) })
	wg.Go(func() { _ = purger.Run(ctx) })
	wg.Go(func() { repairer.Run(ctx) })
	log.Info("consuming", "queue", cfg.Broker.Queue, "ops_addr", cfg.OpsAddr)
	subscriber.Run(ctx, applier.Handle)
	stopOps()
	wg.Wait()
	log.Info("stopped", "err", opsErr)
	return opsErr
}
