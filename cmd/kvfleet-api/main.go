// Command kvfleet-api is the stateless REST API: it serves reads from Redis
// and the database, and publishes writes to RabbitMQ. "kvfleet-api
// healthcheck" asks a running API whether it is ready, for container
// healthchecks.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/cmd/internal/backing"
	"github.com/kvfleet/kvfleet/internal/config"
	"github.com/kvfleet/kvfleet/internal/httpapi"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
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
	deps, err := backing.Open(ctx, cfg.Common, "kvfleet-api", log, reg)
	if err != nil {
		return err
	}
	defer deps.Close()
	publisher := queue.NewPublisher(queue.PublisherConfig{Connection: deps.Broker, Topology: deps.Topology,
		Channels: cfg.PublisherChannels, Pipeline: cfg.PublishPipeline, MaxBatch: cfg.PublishMaxBatch,
		MaxBatchBytes: cfg.PublishMaxBatchBytes, Timeout: cfg.PublishTimeout, Logger: log}, reg)
	service := kv.NewService(kv.ServiceConfig{Limits: cfg.Limits, Clock: version.NewClock(cfg.NodeID, time.Now),
		Cache: deps.Cache, Store: deps.Store, Publisher: publisher, Now: time.Now, ReadTimeout: cfg.ReadTimeout, Registerer: reg})
	readiness := &httpapi.Readiness{}
	hostname, _ := os.Hostname() // X-Served-By; empty if unknown
	api := &http.Server{Addr: cfg.HTTPAddr, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		Handler: httpapi.New(httpapi.Config{KV: service, MaxBodyBytes: cfg.MaxBodyBytes, MaxInFlight: cfg.MaxInFlight, MaxInFlightBytes: cfg.MaxInFlightBytes, Cache: deps.Cache, Store: deps.Store,
			Broker: publisher, Readiness: readiness, HealthTimeout: cfg.HealthTimeout, ServedBy: hostname,
			Now: time.Now, Logger: log, Registerer: reg})}
	ops := telemetry.NewOpsServer(cfg.OpsAddr, reg, readiness.Ready)
	lns, err := telemetry.Listen(api, ops)
	if err != nil {
		return err
	}

	// Start the broker connection and the operations server, then the API.
	background, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var opsErr, apiErr error
	wg.Go(func() { publisher.Run(background) })
	wg.Go(func() { opsErr = telemetry.Serve(background, ops, lns[1], cfg.ShutdownTimeout) })
	serving, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	apiDone := make(chan struct{})
	go func() { defer close(apiDone); apiErr = telemetry.Serve(serving, api, lns[0], cfg.ShutdownTimeout) }()
	readiness.SetReady(true)
	log.Info("serving", "http_addr", cfg.HTTPAddr, "ops_addr", cfg.OpsAddr)
	// Stop, in reverse order: leave the load balancer's rotation and give it
	// DrainDelay to notice, finish the requests in flight (each waits for
	// its confirm), then close the broker connection and the ops server.
	select { // a signal, or the API server failed
	case <-ctx.Done():
	case <-apiDone:
	}
	readiness.SetReady(false)
	log.Info("draining", "delay", cfg.DrainDelay)
	time.Sleep(cfg.DrainDelay)
	stopServing()
	<-apiDone
	stopBackground()
	wg.Wait()
	log.Info("stopped", "err", errors.Join(apiErr, opsErr))
	return errors.Join(apiErr, opsErr)
}
