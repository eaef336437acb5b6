package queue_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/testserver"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func topology() queue.Topology {
	return queue.Topology{Queue: "t.writes", DeadLetterExchange: "t.dlx", DeadLetterQueue: "t.dead", DeliveryLimit: 5}
}

// startPublisher starts a publisher with two channels and two messages in
// flight at most, grouping up to 64 writes per message unless tune says
// otherwise.
func startPublisher(t *testing.T, url string, tune func(*queue.PublisherConfig)) *queue.Publisher {
	t.Helper()
	reg := prometheus.NewRegistry()
	conn := queue.NewConnection(&queue.Dialer{URLs: []string{url}, Timeout: 2 * time.Second, Heartbeat: 5 * time.Second, WriteTimeout: 2 * time.Second}, quiet, reg)
	cfg := queue.PublisherConfig{
		Connection: conn, Topology: topology(), Channels: 2, Pipeline: 2, MaxBatch: 64,
		Timeout: 3 * time.Second, Logger: quiet,
	}
	if tune != nil {
		tune(&cfg)
	}
	p := queue.NewPublisher(cfg, reg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, "publisher to connect", p.Connected)
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func write(key string, hlc uint64) kv.Write {
	return kv.Write{Op: kv.OpPut, Key: key, Value: "v", Version: kvtest.V(hlc), AcceptedAt: time.Now()}
}

// queueDepth asks the broker how many ready messages a queue holds, with a
// passive declare (list_queues reports quorum queues' counts with a delay).
func queueDepth(t *testing.T, rmq *testserver.RabbitMQ, name string) int {
	t.Helper()
	conn, err := amqp.Dial(rmq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", name, err)
	}
	return q.Messages
}

// TestRabbitMQ runs the publisher and subscriber against a real broker.
func TestRabbitMQ(t *testing.T) {
	rmq := testserver.MustRabbitMQ(t)
	ctx := t.Context()
	pub := startPublisher(t, rmq.URL, nil)

	// publishAll publishes n writes at once through p and fails on any
	// error: each returns only once its message is confirmed.
	publishAll := func(t *testing.T, p *queue.Publisher, n int, firstHLC uint64) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() { errs <- p.Publish(ctx, write("k", firstHLC+uint64(i))) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
	}

	t.Run("concurrent writes are confirmed in shared messages", func(t *testing.T) {
		publishAll(t, pub, 200, 1)
		// Two messages in flight at most: the writes that arrive
		// meanwhile wait and go together. (The next subtest checks that
		// every write is in them.)
		if got := queueDepth(t, rmq, "t.writes"); got < 1 || got >= 200 {
			t.Fatalf("queue holds %d messages for 200 concurrent writes, want fewer: writes waiting for a slot share a message", got)
		}
	})

	t.Run("subscriber receives every confirmed write", func(t *testing.T) {
		sub := queue.NewSubscriber(queue.SubscriberConfig{
			Connection: queue.NewConnection(&queue.Dialer{URLs: []string{rmq.URL}, Timeout: 2 * time.Second}, quiet, prometheus.NewRegistry()),
			Topology:   topology(), Prefetch: 50, Limits: kv.DefaultLimits, Logger: quiet,
		})
		subCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		seen := make(map[string]bool)
		done := make(chan struct{})
		go func() {
			defer close(done)
			sub.Run(subCtx, func(ctx context.Context, messages <-chan queue.Message) error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case m, ok := <-messages:
						if !ok {
							return nil
						}
						if m.Err != nil {
							return m.Err
						}
						for _, w := range m.Writes {
							seen[w.Version.String()] = true
						}
						_ = m.AckThrough()
						if len(seen) == 200 {
							cancel()
						}
					}
				}
			})
		}()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("subscriber did not receive the writes")
		}
		if len(seen) != 200 {
			t.Fatalf("received %d distinct writes, want 200", len(seen))
		}
	})

	t.Run("a batch limit of one publishes every write on its own", func(t *testing.T) {
		single := startPublisher(t, rmq.URL, func(c *queue.PublisherConfig) { c.MaxBatch = 1 })
		publishAll(t, single, 50, 1000)
		if got := queueDepth(t, rmq, "t.writes"); got != 50 {
			t.Fatalf("queue holds %d messages, want 50", got)
		}
	})

	t.Run("a queue at its byte bound refuses publishes as queue full", func(t *testing.T) {
		// The policy the fleet's brokers load (deploy/rabbitmq/start.sh),
		// with a bound of 8 KiB.
		if out, err := rmq.Ctl(ctx, "purge_queue", "t.writes"); err != nil {
			t.Fatalf("purge_queue: %v: %s", err, out)
		}
		if out, err := rmq.Ctl(ctx, "set_policy", "--apply-to", "queues", "bound", `^t\.writes$`,
			`{"max-length-bytes":8192,"overflow":"reject-publish","max-in-memory-length":0}`); err != nil {
			t.Fatalf("set_policy: %v: %s", err, out)
		}
		defer func() {
			if out, err := rmq.Ctl(ctx, "clear_policy", "bound"); err != nil {
				t.Errorf("clear_policy: %v: %s", err, out)
			}
		}()
		single := startPublisher(t, rmq.URL, func(c *queue.PublisherConfig) { c.MaxBatch = 1 })
		value := strings.Repeat("v", 1024)
		accepted := 0
		var err error
		for i := range 100 {
			w := write("big", 5000+uint64(i))
			w.Value = value
			if err = single.Publish(ctx, w); err != nil {
				break
			}
			accepted++
		}
		if !errors.Is(err, kv.ErrQueueFull) {
			t.Fatalf("after %d writes of 1 KiB into a queue bounded at 8 KiB: %v, want an error wrapping kv.ErrQueueFull", accepted, err)
		}
		// RabbitMQ checks the bound before it enqueues, so it may overshoot
		// by what was in flight; not by much.
		if accepted < 7 || accepted > 12 {
			t.Errorf("the queue took %d writes of 1 KiB under a bound of 8 KiB", accepted)
		}
		if got := queueDepth(t, rmq, "t.writes"); got != accepted {
			t.Errorf("queue holds %d messages, want the %d confirmed ones", got, accepted)
		}
	})

	t.Run("a write that reaches no queue is not confirmed", func(t *testing.T) {
		if out, err := rmq.Ctl(ctx, "delete_queue", "t.writes"); err != nil {
			t.Fatalf("delete_queue: %v: %s", err, out)
		}
		err := pub.Publish(ctx, write("lost", 1))
		if !errors.Is(err, queue.ErrUnroutable) {
			t.Fatalf("Publish to a deleted queue = %v, want ErrUnroutable", err)
		}
	})

	t.Run("publisher recovers after a broker restart", func(t *testing.T) {
		if err := rmq.Stop(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "publisher to notice the broker is gone", func() bool { return !pub.Connected() })
		if err := pub.Publish(ctx, write("down", 1)); !errors.Is(err, queue.ErrNotConnected) {
			t.Fatalf("Publish while the broker is down = %v, want ErrNotConnected", err)
		}
		if err := rmq.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "publisher to reconnect", pub.Connected)
		if err := pub.Publish(ctx, write("up", 2)); err != nil {
			t.Fatalf("Publish after restart: %v", err)
		}
		// The reconnect redeclared the queue deleted above.
		if got := queueDepth(t, rmq, "t.writes"); got != 1 {
			t.Fatalf("queue holds %d messages after restart, want 1", got)
		}
	})

	t.Run("a blocked broker answers publishes with an error, not a hang", func(t *testing.T) {
		if out, err := rmq.Ctl(ctx, "set_vm_memory_high_watermark", "absolute", "1"); err != nil {
			t.Fatalf("raise a memory alarm: %v: %s", err, out)
		}
		defer func() {
			if out, err := rmq.Ctl(ctx, "set_vm_memory_high_watermark", "0.4"); err != nil {
				t.Errorf("clear the memory alarm: %v: %s", err, out)
			}
		}()
		// Each publish must end with an error within its timeout; the
		// bound here only keeps a hang from stalling the suite.
		publishEnds := func(hlc uint64) error {
			done := make(chan error, 1)
			go func() { done <- pub.Publish(ctx, write("blocked", hlc)) }()
			select {
			case err := <-done:
				return err
			case <-time.After(30 * time.Second):
				t.Fatal("Publish hung while the broker was blocking publishers")
				return nil
			}
		}
		if err := publishEnds(100); err == nil {
			t.Fatal("a publish was confirmed while the broker had a memory alarm")
		}
		waitFor(t, "the publisher to report the block", func() bool {
			return errors.Is(publishEnds(101), queue.ErrBlocked)
		})
		if out, err := rmq.Ctl(ctx, "set_vm_memory_high_watermark", "0.4"); err != nil {
			t.Fatalf("clear the memory alarm: %v: %s", err, out)
		}
		waitFor(t, "publishes to be confirmed again", func() bool { return pub.Publish(ctx, write("unblocked", 102)) == nil })
	})
}
