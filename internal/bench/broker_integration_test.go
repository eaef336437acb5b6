package bench

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/testserver"
)

// TestBrokerHelpers runs the helpers that run in containers on the back
// network against a real broker.
func TestBrokerHelpers(t *testing.T) {
	rmq := testserver.MustRabbitMQ(t)
	ctx := t.Context()
	conn, err := amqp.Dial(rmq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exists := func(name string) bool {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		return err == nil
	}

	t.Run("the ceiling publishes, drains and deletes its queue", func(t *testing.T) {
		o := BrokerOptions{URLs: []string{"amqp://nobody:x@127.0.0.1:1/", rmq.URL}, Queue: BenchQueuePrefix + "test", Messages: 3000,
			BodyBytes: 200, Channels: 2, Window: 64, Consumers: 2, Prefetch: 64, AckEvery: 16}
		res, err := RunBroker(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if res.PublishPerSecond <= 0 || res.DrainPerSecond <= 0 || res.Messages != 3000 {
			t.Fatalf("result %+v", res)
		}
		if exists(o.Queue) {
			t.Fatal("the ceiling left its queue behind")
		}
		o.Queue = "kvfleet.writes"
		if _, err := RunBroker(ctx, o); err == nil {
			t.Fatal("the ceiling accepted a queue outside kvfleet.bench.*")
		}
	})

	t.Run("backlog writes are the API's and are counted until drained", func(t *testing.T) {
		const name = "t.writes"
		ch := quorumQueue(t, conn, name)
		// A consumer that starts late, so a backlog builds up, and
		// decodes every message as the fleet's consumers do.
		var decoded, bad atomic.Int64
		var keysOK atomic.Bool
		keysOK.Store(true)
		consumerCtx, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		wg.Go(func() {
			consumeLate(consumerCtx, ch, name, func(d amqp.Delivery) {
				w, err := queue.Decode(d.Body, kv.DefaultLimits)
				if err != nil || w.Op != kv.OpPut || d.MessageId != w.Version.String() {
					bad.Add(1)
				} else {
					decoded.Add(1)
				}
				if !strings.HasPrefix(w.Key, "bench/drain/") {
					keysOK.Store(false)
				}
			})
		})
		res, err := RunBacklog(ctx, BacklogOptions{URLs: []string{rmq.URL}, Queue: name, Messages: 2000, ValueBytes: 64,
			KeyPrefix: "bench/drain/", Channels: 2, Window: 64, Poll: 20 * time.Millisecond, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Drained || res.PublishPerSecond <= 0 || res.AppliedPerSecond <= 0 || res.PeakDepth < res.DepthAtPublishEnd {
			t.Fatalf("result %+v", res)
		}
		deadline := time.Now().Add(10 * time.Second)
		for decoded.Load()+bad.Load() < 2000 && time.Now().Before(deadline) {
			_ = sleep(ctx, 20*time.Millisecond)
		}
		stop()
		wg.Wait()
		if decoded.Load() != 2000 || bad.Load() != 0 || !keysOK.Load() {
			t.Fatalf("decoded %d, undecodable %d, keys ok %v", decoded.Load(), bad.Load(), keysOK.Load())
		}
	})

	t.Run("a held backlog is announced whole and timed from the consumers' start", func(t *testing.T) {
		const name = "t.held"
		ch := quorumQueue(t, conn, name)
		// The consumer is "let go" by the announcement, a moment later, as
		// the benchmark unpauses the fleet's consumers when it reads it.
		consumerCtx, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		var depthAtAnnounce atomic.Int64
		announce := lineWriter(func(line string) {
			if line != PublishedLine {
				return
			}
			if q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil); err == nil {
				depthAtAnnounce.Store(int64(q.Messages))
			}
			wg.Go(func() { consumeLate(consumerCtx, ch, name, func(amqp.Delivery) {}) })
		})
		res, err := RunBacklog(ctx, BacklogOptions{URLs: []string{rmq.URL}, Queue: name, Messages: 2000, ValueBytes: 64,
			KeyPrefix: "bench/drain/", Channels: 2, Window: 64, Poll: 20 * time.Millisecond, Timeout: time.Minute,
			Held: true, Announce: announce})
		stop()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if depthAtAnnounce.Load() != 2000 {
			t.Fatalf("announced with %d of 2000 writes in the queue", depthAtAnnounce.Load())
		}
		if !res.Held || !res.Drained || res.DrainFrom != 2000 || res.ResumeSeconds < 0.25 || res.DrainPerSecond <= 0 || res.KeptPace {
			t.Fatalf("result %+v", res)
		}

		// Consumers that never start: a clear error once the timeout ends.
		_, err = RunBacklog(ctx, BacklogOptions{URLs: []string{rmq.URL}, Queue: name, Messages: 50, ValueBytes: 64,
			KeyPrefix: "bench/drain/", Channels: 1, Window: 16, Poll: 20 * time.Millisecond, Timeout: 300 * time.Millisecond,
			Held: true, Announce: &bytes.Buffer{}})
		if err == nil || !strings.Contains(err.Error(), "did not start on the backlog of 50") {
			t.Fatalf("consumers that never started: %v", err)
		}
	})

	t.Run("the watcher prints the depth", func(t *testing.T) {
		name := BenchQueuePrefix + "watch"
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if err := ch.PublishWithContext(ctx, "", name, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		if err := RunWatch(ctx, []string{rmq.URL}, name, 50*time.Millisecond, 300*time.Millisecond, &out); err != nil {
			t.Fatal(err)
		}
		w := &depthWatch{}
		for line := range strings.Lines(out.String()) {
			w.line(line)
		}
		last, ok := w.latest()
		if !ok || last.Ready != 5 || len(w.samples) < 3 || time.Since(last.At) > 5*time.Second {
			t.Fatalf("watch output %q", out.String())
		}
	})
}

// lineWriter calls its function with every line written to it.
type lineWriter func(string)

func (f lineWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		f(strings.TrimRight(line, "\n"))
	}
	return len(p), nil
}

// quorumQueue declares a durable quorum queue, as the fleet's write queue
// is, and returns the channel it was declared on.
func quorumQueue(t *testing.T, conn *amqp.Connection, name string) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		t.Fatal(err)
	}
	return ch
}

// consumeLate starts consuming name 300 ms from now, so that a backlog
// builds up first, and hands every delivery to each before acknowledging
// it, until ctx ends.
func consumeLate(ctx context.Context, ch *amqp.Channel, name string, each func(amqp.Delivery)) {
	_ = sleep(ctx, 300*time.Millisecond)
	deliveries, err := ch.ConsumeWithContext(ctx, name, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	for d := range deliveries {
		each(d)
		_ = d.Ack(false)
	}
}
