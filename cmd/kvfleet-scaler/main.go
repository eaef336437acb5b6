// Command kvfleet-scaler scales the fleet's API replicas and consumers
// from the load Prometheus sees (monitor-scale.sh runs it; see
// docs/autoscaling.md and internal/scaler).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
	"github.com/kvfleet/kvfleet/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var usage *scaler.UsageError
	isUsage := errors.As(err, &usage)
	switch {
	case isUsage && errors.Is(err, flag.ErrHelp):
		fmt.Print(usage.Usage)
	case isUsage:
		fmt.Fprintf(os.Stderr, "kvfleet-scaler: %v\n\n%s", err, usage.Usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "kvfleet-scaler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, err := scaler.LoadConfig(args, os.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(os.Stdout, slog.LevelInfo, "scaler")
	log.Info("starting", "config", cfg)
	prom, err := scaler.NewPrometheus(cfg.PrometheusURL, cfg.QueryTimeout)
	if err != nil {
		return err
	}
	reg := telemetry.NewRegistry()
	s := scaler.New(scaler.Settings{
		Services:   scaler.Services(cfg),
		Prometheus: prom,
		Fleet: &scaler.Fleet{Runner: scaler.ExecRunner{}, Compose: cfg.Compose, Project: cfg.Project, EnvFile: cfg.EnvFile,
			Routed: "api", StopTimeout: cfg.StopTimeout, ReadyTimeout: cfg.ReadyTimeout, Poll: time.Second},
		DryRun:   cfg.DryRun,
		Interval: cfg.Interval,
		Now:      time.Now,
		Logger:   log,
	}, reg)
	if err := s.Check(ctx); err != nil {
		return err
	}
	if cfg.Once {
		return s.Step(ctx)
	}

	// The metrics server outlives the loop so that its last decision can
	// be scraped until the end; it stops after the loop.
	ops := telemetry.NewOpsServer(cfg.MetricsAddr, reg, func() bool { return true })
	lns, err := telemetry.Listen(ops)
	if err != nil {
		return err
	}
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	var opsErr error
	var wg sync.WaitGroup
	wg.Go(func() { opsErr = telemetry.Serve(opsCtx, ops, lns[0], 5*time.Second) })
	log.Info("scaling", "interval", cfg.Interval.String(), "metrics_addr", cfg.MetricsAddr, "dry_run", cfg.DryRun)
	s.Run(ctx)
	stopOps()
	wg.Wait()
	log.Info("stopped", "err", opsErr)
	return opsErr
}
