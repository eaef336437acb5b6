// Command kvfleet-local runs kvfleet on this machine without Docker: it
// starts a Redis master with a replica and three Sentinels, PostgreSQL and
// RabbitMQ on loopback ports (from Debian's packages, as the integration
// tests do), then one API and one consumer as child processes, and keeps
// them running until interrupted. It is the development counterpart of the
// Compose fleet.
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
	"sync"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/telemetry"
	"github.com/kvfleet/kvfleet/internal/testserver"
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

func run(ctx context.Context) error {
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
	servers, err := startServers(ctx, dir)
	if err != nil {
		return err
	}
	defer servers.close()

	env := slices.Clip(append(os.Environ(),
		"KVFLEET_REDIS_SENTINEL_ADDRS="+strings.Join(servers.redis.SentinelAddrs, ","),
		"KVFLEET_REDIS_MASTER_NAME="+servers.redis.MasterName,
		"KVFLEET_REDIS_PASSWORD="+servers.redis.Password,
		"KVFLEET_REDIS_SENTINEL_PASSWORD="+servers.redis.SentinelPassword,
		"KVFLEET_DATABASE_URL="+servers.postgres.URL,
		"KVFLEET_AMQP_URLS="+servers.rabbit.URL,
	)) // clipped: each child appends its own addresses to a copy
	consumer := exec.Command(filepath.Join(*bin, "kvfleet-consumer"))
	consumer.Env = append(env, "KVFLEET_OPS_ADDR="+*consumerOps)
	api := exec.Command(filepath.Join(*bin, "kvfleet-api"))
	api.Env = append(env, "KVFLEET_HTTP_ADDR="+*httpAddr, "KVFLEET_OPS_ADDR="+*opsAddr)
	var children []*child
	for _, cmd := range []*exec.Cmd{consumer, api} {
		c, err := startChild(cmd)
		if err != nil {
			stopAll(children)
			return err
		}
		children = append(children, c)
	}
	defer stopAll(children)

	if err := waitReady(ctx, "http://"+*httpAddr+"/readyz", "http://"+*consumerOps+"/readyz"); err != nil {
		return err
	}
	fmt.Printf("\nkvfleet is running: API on http://%s, metrics on http://%s/metrics and http://%s/metrics\n", *httpAddr, *opsAddr, *consumerOps)
	fmt.Println("press Ctrl-C to stop (all data is discarded)")

	select {
	case <-ctx.Done():
		fmt.Println("\nstopping ...")
		return nil
	case <-children[0].done:
		return fmt.Errorf("the consumer exited: %v", children[0].err)
	case <-children[1].done:
		return fmt.Errorf("the API exited: %v", children[1].err)
	}
}

// child is a running binary and the goroutine that waits for it.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(cmd *exec.Cmd) (*child, error) {
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run 'make build' first)", cmd.Path, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = cmd.Wait()
	}()
	return c, nil
}

type servers struct {
	redis    *testserver.RedisSet
	postgres *testserver.Postgres
	rabbit   *testserver.RabbitMQ
}

func startServers(ctx context.Context, dir string) (*servers, error) {
	s := &servers{}
	var wg sync.WaitGroup
	var errs [3]error
	wg.Go(func() { s.redis, errs[0] = testserver.StartRedis(ctx, filepath.Join(dir, "redis")) })
	wg.Go(func() { s.postgres, errs[1] = testserver.StartPostgres(ctx, filepath.Join(dir, "postgres")) })
	wg.Go(func() { s.rabbit, errs[2] = testserver.StartRabbitMQ(ctx, filepath.Join(dir, "rabbitmq")) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		s.close()
		return nil, fmt.Errorf("%w\n(are the servers installed? run scripts/install-test-deps.sh)", err)
	}
	return s, nil
}

func (s *servers) close() {
	if s.redis != nil {
		_ = s.redis.Close()
	}
	if s.postgres != nil {
		_ = s.postgres.Close()
	}
	if s.rabbit != nil {
		_ = s.rabbit.Close()
	}
}

// stopAll sends SIGTERM, so that the API drains and the consumer finishes
// its batch, and waits a bounded time before killing.
func stopAll(children []*child) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range children {
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

func waitReady(ctx context.Context, urls ...string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, url := range urls {
		for {
			err := telemetry.Healthcheck(ctx, url)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("not ready: %w", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}
