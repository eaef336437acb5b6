// Command kvfleet-local runs kvfleet on this machine without Docker: it
// starts a Redis master with a replica and three Sentinels, PostgreSQL and
// RabbitMQ on loopback ports (from Debian's packages, as the integration
// tests do), then one API and one consumer as child processes, and keeps
// them running until interrupted or until one of them exits. It is the
// development counterpart of the Compose fleet (scripts/run-local.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kvfleet/kvfleet/internal/localserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvfleet-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (err error) {
	bin := flag.String("bin", "bin", "directory holding kvfleet-api and kvfleet-consumer")
	httpAddr := flag.String("http", "127.0.0.1:8000", "address of the API")
	opsAddr := flag.String("ops", "127.0.0.1:9100", "address of the API's metrics and health server")
	consumerOps := flag.String("consumer-ops", "127.0.0.1:9101", "address of the consumer's metrics and health server")
	flag.Parse()

	dir, err := os.MkdirTemp("", "kvfleet-local-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Println("starting Redis (master, replica, 3 Sentinels), PostgreSQL and RabbitMQ on loopback ports ...")
	s, err := localserver.StartAll(ctx, dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()

	env := slices.Clip(append(os.Environ(),
		"KVFLEET_REDIS_SENTINEL_ADDRS="+strings.Join(s.Redis.SentinelAddrs, ","),
		"KVFLEET_REDIS_MASTER_NAME="+s.Redis.MasterName,
		"KVFLEET_REDIS_PASSWORD="+s.Redis.Password,
		"KVFLEET_REDIS_SENTINEL_PASSWORD="+s.Redis.SentinelPassword,
		"KVFLEET_DATABASE_URL="+s.Postgres.URL,
		"KVFLEET_AMQP_URLS="+s.RabbitMQ.URL,
	)) // clipped: each child appends its own addresses to a copy
	// Readiness is the children's to report, on their /readyz;
	// scripts/run-local.sh waits for it.
	fmt.Printf("starting the consumer and the API (http://%s): ready when http://%s/readyz and http://%s/readyz answer 200\n", *httpAddr, *opsAddr, *consumerOps)
	fmt.Println("Ctrl-C stops everything and discards the data")
	// The children run until ctx ends or one of them exits. Either cancels
	// gctx, which sends the others SIGTERM, so that the API drains and the
	// consumer finishes its batch, and SIGKILL if that takes over 30 s.
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range []struct {
		name string
		env  []string
	}{
		{"kvfleet-consumer", []string{"KVFLEET_OPS_ADDR=" + *consumerOps}},
		{"kvfleet-api", []string{"KVFLEET_OPS_ADDR=" + *opsAddr, "KVFLEET_HTTP_ADDR=" + *httpAddr}},
	} {
		cmd := exec.CommandContext(gctx, filepath.Join(*bin, c.name))
		cmd.Env, cmd.Stdout, cmd.Stderr = append(env, c.env...), os.Stdout, os.Stderr
		cmd.Cancel, cmd.WaitDelay = func() error { return cmd.Process.Signal(syscall.SIGTERM) }, 30*time.Second
		// If kvfleet-local is killed outright, take the children with it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			g.Go(func() error { return fmt.Errorf("start %s: %w (run 'make build' first)", cmd.Path, err) })
			break
		}
		g.Go(func() error {
			if err := cmd.Wait(); ctx.Err() == nil {
				return fmt.Errorf("%s exited: %v", c.name, err)
			}
			return nil // asked to stop
		})
	}
	return g.Wait()
}
