package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/cache"
	"github.com/kvfleet/kvfleet/internal/consumer"
	"github.com/kvfleet/kvfleet/internal/httpapi"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/store"
	"github.com/kvfleet/kvfleet/internal/testserver"
	"github.com/kvfleet/kvfleet/internal/version"
)

// fleet is one API and two consumers wired to real servers.
type fleet struct {
	redis    *testserver.RedisSet
	postgres *testserver.Postgres
	rabbit   *testserver.RabbitMQ

	api       *httptest.Server
	publisher *queue.Publisher
	clock     *version.Clock
	// store and cache are separate adapters on the same servers, for the
	// tests to inspect and to build their own services with.
	store    *store.Store
	pool     *pgxpool.Pool
	cache    *cache.Cache
	consumed *prometheus.Registry // the consumers' metrics
	topology queue.Topology
}

func logger() *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startFleet starts the servers in parallel, then the API and consumers.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	testserver.Require(t, "redis-server", "redis-sentinel", "initdb", "postgres", "rabbitmq-server", "rabbitmqctl")
	f := &fleet{topology: queue.Topology{Queue: "kvfleet.writes", DeadLetterExchange: "kvfleet.writes.dlx", DeadLetterQueue: "kvfleet.writes.dead", DeliveryLimit: 20}}
	// The servers start in parallel (RabbitMQ alone takes seconds); t.Fatal
	// belongs on this goroutine, so errors are collected first.
	var wg sync.WaitGroup
	var errs [3]error
	wg.Go(func() { f.redis, errs[0] = startServer(t, testserver.StartRedis) })
	wg.Go(func() { f.postgres, errs[1] = startServer(t, testserver.StartPostgres) })
	wg.Go(func() { f.rabbit, errs[2] = startServer(t, testserver.StartRabbitMQ) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { stop(); running.Wait() })
	log := logger()

	f.pool = f.openPool(t)
	f.store = store.New(f.pool, store.Options{QueryTimeout: 5 * time.Second}, prometheus.NewRegistry())
	if err := f.store.Migrate(ctx, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	f.cache = f.newCache(t, prometheus.NewRegistry())

	// The API.
	apiReg := prometheus.NewRegistry()
	apiCache := f.newCache(t, apiReg)
	apiStore := store.New(f.openPool(t), store.Options{QueryTimeout: 5 * time.Second}, apiReg)
	f.publisher = queue.NewPublisher(queue.PublisherConfig{
		Connection: queue.NewConnection(f.dialer("test-api"), log, apiReg),
		Topology:   f.topology, Channels: 4, Timeout: 5 * time.Second, Logger: log,
	}, apiReg)
	running.Go(func() { f.publisher.Run(ctx) })
	f.clock = version.NewClock(1, time.Now)
	service := kv.NewService(kv.ServiceConfig{
		Limits: kv.DefaultLimits, Clock: f.clock, Cache: apiCache, Store: apiStore, Publisher: f.publisher,
		Now: time.Now, ReadTimeout: 5 * time.Second, Registerer: apiReg,
	})
	readiness := &httpapi.Readiness{}
	readiness.SetReady(true)
	f.api = httptest.NewServer(httpapi.New(httpapi.Config{
		KV: service, MaxBodyBytes: 8 << 20, Cache: apiCache, Store: apiStore, Broker: f.publisher,
		Readiness: readiness, HealthTimeout: time.Second, Now: time.Now, Logger: log, Registerer: apiReg,
	}))
	t.Cleanup(f.api.Close)

	// Two consumers, so that writes are applied concurrently and out of order.
	f.consumed = prometheus.NewRegistry()
	for i := range 2 {
		reg := prometheus.WrapRegistererWith(prometheus.Labels{"consumer": fmt.Sprint(i)}, f.consumed)
		c := consumer.New(consumer.Config{
			BatchSize: 16, BatchBytes: 4 << 20, BatchWait: 5 * time.Millisecond, DrainTimeout: 2 * time.Second,
			RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond, RowError: store.RowError,
			Now: time.Now, Logger: log,
		}, store.New(f.openPool(t), store.Options{QueryTimeout: 5 * time.Second}, reg),
			f.newCache(t, reg), reg)
		sub := queue.NewSubscriber(queue.SubscriberConfig{
			Connection: queue.NewConnection(f.dialer(fmt.Sprintf("test-consumer-%d", i)), log, reg),
			Topology:   f.topology, Prefetch: 64, Limits: kv.DefaultLimits, Logger: log,
		})
		running.Go(func() { sub.Run(ctx, c.Handle) })
	}
	f.eventually(t, 60*time.Second, "the publisher to connect", func() error {
		if !f.publisher.Connected() {
			return errors.New("not connected")
		}
		return nil
	})
	return f
}

// startServer starts one server in a directory of the test's and closes it
// when the test ends; it may run on any goroutine.
func startServer[S interface{ Close() error }](t *testing.T, start func(context.Context, string) (S, error)) (S, error) {
	s, err := start(t.Context(), t.TempDir())
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, err
}

func (f *fleet) openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := store.OpenPool(context.Background(), store.PoolConfig{URL: f.postgres.URL, MaxConns: 4, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func (f *fleet) newCache(t *testing.T, reg prometheus.Registerer) *cache.Cache {
	client := cache.NewClient(cache.Config{
		SentinelAddrs: f.redis.SentinelAddrs, MasterName: f.redis.MasterName,
		Password: f.redis.Password, SentinelPassword: f.redis.SentinelPassword, Timeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { client.Close() })
	return cache.New(client, cache.Options{KeyPrefix: "kv:", TTL: 5 * time.Minute, NotFoundTTL: 5 * time.Second}, reg)
}

func (f *fleet) dialer(name string) *queue.Dialer {
	return &queue.Dialer{URLs: []string{f.rabbit.URL}, Timeout: 2 * time.Second, Heartbeat: 5 * time.Second, Name: name}
}

// response is what the tests read of an API answer.
type response struct {
	Status  int
	Value   string `json:"value"`
	Source  string `json:"source"`
	Version string `json:"version"`
	Code    string `json:"code"`
}

func (f *fleet) do(t *testing.T, method, target string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, f.api.URL+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.api.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, target, raw)
	}
	return r
}

func (f *fleet) put(t *testing.T, key, value string) response {
	body, _ := json.Marshal(map[string]string{"key_name": key, "key_value": value})
	return f.do(t, http.MethodPut, "/", body)
}

func (f *fleet) get(t *testing.T, key string) response {
	return f.do(t, http.MethodGet, "/?"+url.Values{"key": {key}}.Encode(), nil)
}

func (f *fleet) del(t *testing.T, key string) response {
	return f.do(t, http.MethodDelete, "/?"+url.Values{"key_name": {key}}.Encode(), nil)
}

// eventually retries check until it returns nil or the timeout passes.
func (f *fleet) eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converged checks that the database and the cache (when it holds the key)
// both hold exactly want for every key.
func (f *fleet) converged(ctx context.Context, want map[string]kv.Item) error {
	for key, item := range want {
		got, err := f.store.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("database %q: %w", key, err)
		}
		if got != item {
			return fmt.Errorf("database %q = %+v, want %+v", key, got, item)
		}
		cached, err := f.cache.Get(ctx, key)
		if errors.Is(err, kv.ErrCacheMiss) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cache %q: %w", key, err)
		}
		if cached != item {
			return fmt.Errorf("cache %q = %+v, want %+v", key, cached, item)
		}
	}
	return nil
}
