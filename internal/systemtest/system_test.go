package systemtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// TestSystem runs the scenarios in order on one fleet; the ones that stop
// servers come last.
func TestSystem(t *testing.T) {
	f := startFleet(t)
	ctx := t.Context()

	t.Run("write, consume, read, delete", func(t *testing.T) {
		put := f.put(t, "teste", "valor")
		if put.Status != http.StatusAccepted {
			t.Fatalf("PUT = %+v", put)
		}
		f.eventually(t, 5*time.Second, "the write to be readable", func() error {
			if r := f.get(t, "teste"); r.Status != http.StatusOK || r.Value != "valor" || r.Version != put.Version {
				return fmt.Errorf("GET = %+v", r)
			}
			return nil
		})
		if r := f.get(t, "teste"); r.Source != "redis" {
			t.Fatalf("second GET came from %q, want redis (the consumer or the first read cached it)", r.Source)
		}
		del := f.del(t, "teste")
		if del.Status != http.StatusAccepted || del.Version <= put.Version {
			t.Fatalf("DELETE = %+v (put version %s)", del, put.Version)
		}
		f.eventually(t, 5*time.Second, "the delete to be visible", func() error {
			if r := f.get(t, "teste"); r.Status != http.StatusNotFound {
				return fmt.Errorf("GET after delete = %+v", r)
			}
			return nil
		})
	})

	t.Run("shuffled and duplicated replay ends in the highest versions", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 11))
		var log []kv.Write
		want := make(map[string]kv.Item)
		for i := range 400 {
			key := fmt.Sprintf("replay-%d", rng.IntN(25))
			w := kv.Write{Op: kv.OpPut, Key: key, Value: fmt.Sprintf("value-%d", i), Version: f.clock.Next(), AcceptedAt: time.Now()}
			if rng.IntN(5) == 0 {
				w = kv.Write{Op: kv.OpDelete, Key: key, Version: f.clock.Next(), AcceptedAt: time.Now()}
			}
			log = append(log, w)
			want[key] = w.Item()
		}
		replay := append(append([]kv.Write(nil), log...), log[:200]...)
		rng.Shuffle(len(replay), func(i, j int) { replay[i], replay[j] = replay[j], replay[i] })
		for _, w := range replay {
			if err := f.publisher.Publish(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		f.eventually(t, 30*time.Second, "the replay to converge", func() error { return f.converged(ctx, want) })
		for key, item := range want {
			r := f.get(t, key)
			if item.Deleted && r.Status != http.StatusNotFound || !item.Deleted && (r.Status != http.StatusOK || r.Value != item.Value) {
				t.Fatalf("GET %s = %+v, want %+v", key, r, item)
			}
		}
	})

	t.Run("a redelivered older put does not resurrect a deleted key", func(t *testing.T) {
		old := kv.Write{Op: kv.OpPut, Key: "zombie", Value: "alive", Version: f.clock.Next(), AcceptedAt: time.Now()}
		del := kv.Write{Op: kv.OpDelete, Key: "zombie", Version: f.clock.Next(), AcceptedAt: time.Now()}
		for _, w := range []kv.Write{old, del} {
			if err := f.publisher.Publish(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]kv.Item{"zombie": del.Item()}
		f.eventually(t, 10*time.Second, "the delete to apply", func() error { return f.converged(ctx, want) })
		if err := f.publisher.Publish(ctx, old); err != nil { // the redelivery
			t.Fatal(err)
		}
		// A marker write behind it on the same queue shows the redelivery
		// has been consumed.
		marker := kv.Write{Op: kv.OpPut, Key: "zombie-marker", Value: "m", Version: f.clock.Next(), AcceptedAt: time.Now()}
		if err := f.publisher.Publish(ctx, marker); err != nil {
			t.Fatal(err)
		}
		want["zombie-marker"] = marker.Item()
		f.eventually(t, 10*time.Second, "the marker to apply", func() error { return f.converged(ctx, want) })
		if r := f.get(t, "zombie"); r.Status != http.StatusNotFound {
			t.Fatalf("GET zombie = %+v, want 404", r)
		}
	})

	t.Run("a stale cache fill is impossible", func(t *testing.T) { staleFill(t, f) })

	t.Run("a poison message is dead-lettered while good messages flow", func(t *testing.T) {
		conn, err := amqp.Dial(f.rabbit.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		good := map[string]kv.Item{}
		for i := range 20 {
			w := kv.Write{Op: kv.OpPut, Key: fmt.Sprintf("flow-%d", i), Value: "ok", Version: f.clock.Next(), AcceptedAt: time.Now()}
			good[w.Key] = w.Item()
			if err := f.publisher.Publish(ctx, w); err != nil {
				t.Fatal(err)
			}
			if i == 10 {
				err := ch.PublishWithContext(ctx, "", f.topology.Queue, false, false, amqp.Publishing{
					DeliveryMode: amqp.Persistent, Body: []byte(`{"op":"explode"`),
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		f.eventually(t, 15*time.Second, "the good messages to apply", func() error { return f.converged(ctx, good) })
		f.eventually(t, 15*time.Second, "the poison message to reach the dead-letter queue", func() error {
			q, err := ch.QueueDeclarePassive(f.topology.DeadLetterQueue, true, false, false, false, nil)
			if err != nil {
				return err
			}
			if q.Messages != 1 {
				return fmt.Errorf("dead-letter queue holds %d messages", q.Messages)
			}
			return nil
		})
		if n := counterSum(t, f.consumed, "kvfleet_consumer_messages_total", "dead_lettered"); n != 1 {
			t.Fatalf("dead_lettered = %v, want 1", n)
		}
	})

	t.Run("database down for 30s: every accepted write is applied afterwards", func(t *testing.T) {
		if err := f.postgres.Stop(); err != nil {
			t.Fatal(err)
		}
		accepted := f.writeFor(t, 30*time.Second, "db-outage")
		if len(accepted) == 0 {
			t.Fatal("no write was accepted while the database was down; writes must not need it")
		}
		if n := counterSum(t, f.consumed, "kvfleet_consumer_messages_total", "dead_lettered"); n != 1 {
			t.Fatalf("the outage dead-lettered good writes: dead_lettered = %v, want the 1 poison message", n)
		}
		if err := f.postgres.Start(ctx); err != nil {
			t.Fatal(err)
		}
		f.eventually(t, 60*time.Second, "every write accepted during the outage to apply", func() error { return f.converged(ctx, accepted) })
		t.Logf("%d writes accepted during the outage, all applied", len(accepted))
	})

	t.Run("Redis master killed: reads and writes go on", func(t *testing.T) {
		warm := f.put(t, "redis-failover", "before")
		if warm.Status != http.StatusAccepted {
			t.Fatalf("PUT = %+v", warm)
		}
		f.eventually(t, 5*time.Second, "the write to apply", func() error {
			if r := f.get(t, "redis-failover"); r.Value != "before" {
				return fmt.Errorf("GET = %+v", r)
			}
			return nil
		})
		old, err := f.redis.CurrentMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.redis.KillMaster(); err != nil {
			t.Fatal(err)
		}
		// Reads of a committed key keep answering from the database while
		// Sentinel fails over; none may be a 5xx.
		var readFailures atomic.Int64
		stopReads := make(chan struct{})
		var readers sync.WaitGroup
		readers.Go(func() {
			for {
				select {
				case <-stopReads:
					return
				default:
				}
				if r := f.get(t, "redis-failover"); r.Status != http.StatusOK || r.Value != "before" {
					readFailures.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		accepted := f.writeFor(t, 8*time.Second, "redis-outage")
		waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := f.redis.WaitForFailover(waitCtx, old); err != nil {
			t.Fatal(err)
		}
		close(stopReads)
		readers.Wait()
		if n := readFailures.Load(); n > 0 {
			t.Fatalf("%d reads failed during the Redis failover", n)
		}
		f.eventually(t, 60*time.Second, "writes accepted during the failover to apply", func() error { return f.converged(ctx, accepted) })
		if r := f.put(t, "redis-failover", "after"); r.Status != http.StatusAccepted {
			t.Fatalf("PUT after failover = %+v", r)
		}
		f.eventually(t, 10*time.Second, "the new value to be read", func() error {
			if r := f.get(t, "redis-failover"); r.Value != "after" || r.Source != "redis" {
				return fmt.Errorf("GET = %+v", r)
			}
			return nil
		})
	})

	t.Run("RabbitMQ restarted while writes are accepted: no 202 is lost", func(t *testing.T) {
		var accepted map[string]kv.Item
		var refused int
		done := make(chan struct{})
		go func() {
			defer close(done)
			accepted, refused = f.writeCounting(t, 40*time.Second, "rabbit-restart")
		}()
		time.Sleep(2 * time.Second)
		if err := f.rabbit.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := f.rabbit.Start(ctx); err != nil {
			t.Fatal(err)
		}
		<-done
		if refused == 0 {
			t.Fatal("no write was refused while the broker was down; the restart did not happen during the writes")
		}
		f.eventually(t, 60*time.Second, "every write that got a 202 to apply", func() error { return f.converged(ctx, accepted) })
		t.Logf("%d writes accepted, %d refused with 503 during the restart; all accepted ones applied", len(accepted), refused)
	})
}

// writeFor PUTs distinct keys for d and returns the ones that got a 202.
func (f *fleet) writeFor(t *testing.T, d time.Duration, prefix string) map[string]kv.Item {
	accepted, _ := f.writeCounting(t, d, prefix)
	return accepted
}

// writeCounting PUTs distinct keys with two concurrent clients for d and
// returns the writes that got a 202 (with their versions) and the number
// refused with a 503. Any other answer fails the test.
func (f *fleet) writeCounting(t *testing.T, d time.Duration, prefix string) (map[string]kv.Item, int) {
	var mu sync.Mutex
	accepted := make(map[string]kv.Item)
	refused := 0
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for client := range 2 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && i < 10000; i++ {
				key := fmt.Sprintf("%s-%d-%d", prefix, client, i)
				value := "value of " + key
				r := f.put(t, key, value)
				mu.Lock()
				switch r.Status {
				case http.StatusAccepted:
					accepted[key] = kv.Item{Key: key, Value: value, Version: mustVersion(t, r.Version)}
				case http.StatusServiceUnavailable:
					refused++
				default:
					t.Errorf("PUT %s = %+v", key, r)
				}
				mu.Unlock()
				time.Sleep(25 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return accepted, refused
}

// counterSum adds up a counter's series with the given result label.
func counterSum(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
