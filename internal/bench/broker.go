package bench

// This file is the one place outside internal/queue that speaks AMQP. It
// measures the broker itself, as the ceiling the queue adapter is judged
// against, so it must not go through that adapter; it only borrows the
// adapter's message encoding (queue.Encode) to fill the fleet's write
// queue with writes the consumers accept. It runs inside a throwaway
// container on the fleet's back network (see reference.go).

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/version"
)

// BenchQueuePrefix starts the name of every queue the benchmark declares:
// the application's RabbitMQ user may only configure kvfleet.* queues.
const BenchQueuePrefix = "kvfleet.bench."

// deleteQueue deletes a queue of the benchmark, on fresh channels (the
// others may have been closed by an error), trying three times.
func deleteQueue(conn *amqp.Connection, name string) {
	for range 3 {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, err = ch.QueueDelete(name, false, false, false)
		_ = ch.Close()
		if err == nil {
			return
		}
	}
}

// dialBroker connects to the first of urls that answers.
func dialBroker(urls []string) (*amqp.Connection, error) {
	var errs []error
	for _, u := range urls {
		conn, err := amqp.DialConfig(strings.TrimSpace(u), amqp.Config{
			Heartbeat: 10 * time.Second,
			Dial:      amqp.DefaultDial(5 * time.Second),
		})
		if err == nil {
			return conn, nil
		}
		// The URL holds the password: name only the node.
		errs = append(errs, fmt.Errorf("%s: %w", hostOf(u), err))
	}
	return nil, fmt.Errorf("bench: no broker answered: %w", errors.Join(errs...))
}

func hostOf(u string) string {
	if _, rest, ok := strings.Cut(u, "@"); ok {
		return strings.TrimSuffix(rest, "/")
	}
	return "?"
}

// message is one publishing of a run.
type message func(i int) (amqp.Publishing, error)

// publishAll publishes messages 0..n-1 to queue through the default
// exchange on channels confirm-mode channels, each with up to window
// messages awaiting their confirm, and returns once every one is
// confirmed (or the first failure).
func publishAll(ctx context.Context, conn *amqp.Connection, queueName string, n, channels, window int, msg message) error {
	var next atomic.Int64
	errs := make([]error, channels)
	var wg sync.WaitGroup
	for c := range channels {
		wg.Go(func() { errs[c] = publishOn(ctx, conn, queueName, n, window, &next, msg) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func publishOn(ctx context.Context, conn *amqp.Connection, queueName string, n, window int, next *atomic.Int64, msg message) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("bench: open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("bench: confirm mode: %w", err)
	}
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	settle := func(dc *amqp.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("bench: waiting for a confirm: %w", err)
		case !ok:
			return errors.New("bench: the broker nacked a message")
		}
		return nil
	}
	for {
		i := int(next.Add(1) - 1)
		if i >= n {
			break
		}
		p, err := msg(i)
		if err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queueName, false, false, p)
		if err != nil {
			return fmt.Errorf("bench: publish: %w", err)
		}
		pending = append(pending, dc)
		if len(pending) >= window {
			if err := settle(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
	}
	for _, dc := range pending {
		if err := settle(dc); err != nil {
			return err
		}
	}
	return nil
}

// BrokerOptions configure the broker ceiling.
type BrokerOptions struct {
	URLs      []string
	Queue     string // must start with BenchQueuePrefix; deleted afterwards
	Messages  int
	BodyBytes int
	Channels  int // publishing channels (the API uses 4)
	Window    int // unconfirmed messages per channel
	Consumers int // draining channels (the fleet runs 2 consumers)
	Prefetch  int // per consumer (the fleet's is 256)
	AckEvery  int // acknowledge multiple every so many (the fleet's batch is 128)
}

// RunBroker measures RabbitMQ's own rates on a quorum queue of its own in
// the fleet's cluster: persistent messages published with pipelined
// confirms, then drained with manual acknowledgements. The queue is
// deleted afterwards, also on failure.
func RunBroker(ctx context.Context, o BrokerOptions) (BrokerResult, error) {
	res := BrokerResult{Queue: o.Queue, Messages: o.Messages, BodyBytes: o.BodyBytes, Channels: o.Channels,
		Window: o.Window, Consumers: o.Consumers, Prefetch: o.Prefetch, AckEvery: o.AckEvery}
	if !strings.HasPrefix(o.Queue, BenchQueuePrefix) || o.Messages <= 0 || o.Channels <= 0 || o.Window <= 0 ||
		o.Consumers <= 0 || o.Prefetch <= 0 || o.AckEvery <= 0 || o.AckEvery > o.Prefetch {
		return res, fmt.Errorf("bench: bad broker options %+v", o)
	}
	conn, err := dialBroker(o.URLs)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	setup, err := conn.Channel()
	if err != nil {
		return res, fmt.Errorf("bench: open channel: %w", err)
	}
	// Same kind of queue as the fleet's write queue.
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	if _, err := setup.QueueDeclare(o.Queue, true, false, false, false, args); err != nil {
		return res, fmt.Errorf("bench: declare %s: %w", o.Queue, err)
	}
	defer deleteQueue(conn, o.Queue)
	_ = setup.Close()

	body := []byte(strings.Repeat("x", o.BodyBytes))
	start := time.Now()
	err = publishAll(ctx, conn, o.Queue, o.Messages, o.Channels, o.Window, func(int) (amqp.Publishing, error) {
		return amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body}, nil
	})
	if err != nil {
		return res, err
	}
	res.PublishSeconds = round3(time.Since(start).Seconds())
	res.PublishPerSecond = round1(float64(o.Messages) / time.Since(start).Seconds())

	took, err := drain(ctx, conn, o.Queue, o.Messages, o.Consumers, o.Prefetch, o.AckEvery)
	if err != nil {
		return res, err
	}
	res.DrainSeconds = round3(took.Seconds())
	res.DrainPerSecond = round1(float64(o.Messages) / took.Seconds())
	return res, nil
}

// drain consumes n messages of queue on consumers channels and
// acknowledges them ackEvery at a time; it returns how long it took.
func drain(ctx context.Context, conn *amqp.Connection, queueName string, n, consumers, prefetch, ackEvery int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var total atomic.Int64
	errs := make([]error, consumers)
	start := time.Now()
	var finished atomic.Int64
	var wg sync.WaitGroup
	for c := range consumers {
		wg.Go(func() {
			errs[c] = consume(ctx, conn, queueName, prefetch, ackEvery, func() bool {
				if total.Add(1) >= int64(n) {
					finished.Store(int64(time.Since(start)))
					cancel()
					return true
				}
				return false
			})
		})
	}
	wg.Wait()
	if total.Load() < int64(n) {
		err := errors.Join(errs...)
		if err == nil {
			err = ctx.Err()
		}
		return 0, fmt.Errorf("bench: drained %d of %d messages: %w", total.Load(), n, err)
	}
	return time.Duration(finished.Load()), nil
}

// consume takes deliveries until ctx ends or got reports the last one.
func consume(ctx context.Context, conn *amqp.Connection, queueName string, prefetch, ackEvery int, got func() bool) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("bench: open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("bench: qos: %w", err)
	}
	// Not ConsumeWithContext: its cancel would race the channel's close,
	// and a basic.cancel sent on a channel number reused meanwhile closes
	// that other channel.
	deliveries, err := ch.Consume(queueName, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("bench: consume: %w", err)
	}
	unacked := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("bench: the broker closed the consumer")
			}
			unacked++
			last := got()
			if unacked >= ackEvery || last {
				if err := d.Ack(true); err != nil {
					return fmt.Errorf("bench: ack: %w", err)
				}
				unacked = 0
			}
			if last {
				return nil
			}
		}
	}
}

// BacklogOptions configure the backlog test.
type BacklogOptions struct {
	URLs       []string
	Queue      string // the fleet's write queue
	Messages   int
	ValueBytes int
	KeyPrefix  string // keys are KeyPrefix + index: the same keys every run
	Channels   int
	Window     int
	Poll       time.Duration // how often the depth is read
	Timeout    time.Duration // for the consumers to empty the queue
	// Held says the fleet's consumers are paused while the writes are
	// published: once every write is confirmed, RunBacklog writes
	// PublishedLine to Announce (the caller then lets the consumers go)
	// and times the drain from when the depth starts to fall, so that it
	// measures the consumers catching up on the whole backlog rather than
	// keeping pace with the publisher.
	Held     bool
	Announce io.Writer
}

// PublishedLine is what a held backlog test writes once the whole backlog
// is in the queue.
const PublishedLine = "backlog published"

// RunBacklog publishes o.Messages writes straight into the fleet's write
// queue, encoded as the API encodes them (each a put of its own key, at a
// version of now), as fast as the broker confirms them, and measures how
// fast the fleet's consumers apply the backlog: the depth is read every
// Poll until the queue holds no ready message.
func RunBacklog(ctx context.Context, o BacklogOptions) (BacklogResult, error) {
	res := BacklogResult{Messages: o.Messages}
	if o.Messages <= 0 || o.Channels <= 0 || o.Window <= 0 || o.Poll <= 0 || o.Timeout <= 0 || o.KeyPrefix == "" {
		return res, fmt.Errorf("bench: bad backlog options %+v", o)
	}
	conn, err := dialBroker(o.URLs)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	depth, err := newDepthReader(conn, o.Queue)
	if err != nil {
		return res, err
	}
	defer depth.close()

	clock := version.NewClock(randomNode(), time.Now)
	pad := strings.Repeat(".", max(o.ValueBytes-20, 0))
	msg := func(i int) (amqp.Publishing, error) {
		w := kv.Write{Op: kv.OpPut, Key: fmt.Sprintf("%s%07d", o.KeyPrefix, i), Value: fmt.Sprintf("backlog:%d:%s", i, pad),
			Version: clock.Next(), AcceptedAt: time.Now()}
		body, err := queue.Encode(w)
		if err != nil {
			return amqp.Publishing{}, err
		}
		// The properties the API's publisher sets.
		return amqp.Publishing{ContentType: queue.ContentType, DeliveryMode: amqp.Persistent,
			MessageId: w.Version.String(), Timestamp: w.AcceptedAt, Type: w.Op.String(), Body: body}, nil
	}

	// The depth is sampled while publishing, to see the peak.
	pollCtx, stopPoll := context.WithCancel(ctx)
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(o.Poll)
		defer tick.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-tick.C:
				if n, err := depth.read(); err == nil && int64(n) > peak.Load() {
					peak.Store(int64(n))
				}
			}
		}
	})
	start := time.Now()
	err = publishAll(ctx, conn, o.Queue, o.Messages, o.Channels, o.Window, msg)
	published := time.Now()
	stopPoll()
	wg.Wait()
	if err != nil {
		return res, err
	}
	res.PublishSeconds = round3(published.Sub(start).Seconds())
	res.PublishPerSecond = round1(float64(o.Messages) / published.Sub(start).Seconds())
	atEnd, err := depth.read()
	if err != nil {
		return res, err
	}
	res.DepthAtPublishEnd = atEnd
	res.PeakDepth = max(int(peak.Load()), atEnd)

	deadline := time.Now().Add(o.Timeout)
	from, drainStart := atEnd, published
	if o.Held {
		if o.Announce != nil {
			if _, err := fmt.Fprintln(o.Announce, PublishedLine); err != nil {
				return res, err
			}
		}
		// The consumers start once they are let go (and have reconnected,
		// if the broker dropped them meanwhile). The drain is timed from
		// the last read that still saw the whole backlog: at most one poll
		// early, so the rate errs low.
		lastFull := time.Now()
		for from >= atEnd && from > 0 {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("bench: the consumers did not start on the backlog of %d within %v", atEnd, o.Timeout)
			}
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(o.Poll):
			}
			at := time.Now()
			if from, err = depth.read(); err != nil {
				return res, err
			}
			if from >= atEnd {
				lastFull = at
			}
		}
		drainStart = lastFull
		res.Held, res.DrainFrom = true, atEnd
		res.ResumeSeconds = round3(drainStart.Sub(published).Seconds())
	}
	for n := from; n > 0; {
		if time.Now().After(deadline) {
			res.DrainSeconds = round3(time.Since(published).Seconds())
			return res, fmt.Errorf("bench: the consumers left %d of %d messages after %v", n, o.Messages, o.Timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(o.Poll):
		}
		if n, err = depth.read(); err != nil {
			return res, err
		}
	}
	empty := time.Now()
	res.Drained = true
	res.DrainSeconds = round3(empty.Sub(published).Seconds())
	res.AppliedPerSecond = round1(float64(o.Messages) / empty.Sub(start).Seconds())
	if o.Held {
		if atEnd > 0 {
			res.DrainPerSecond = round1(float64(atEnd) / empty.Sub(drainStart).Seconds())
		}
		return res, nil
	}
	if atEnd*10 < o.Messages {
		// Too little was left to time its drain: the consumers kept up
		// with the publisher, and drain at least as fast as they applied.
		res.KeptPace = true
		res.DrainPerSecond = res.AppliedPerSecond
	} else {
		res.DrainPerSecond = round1(float64(atEnd) / empty.Sub(published).Seconds())
	}
	return res, nil
}

// depthReader reads a queue's ready messages with passive declares on a
// channel of its own, reopened if the broker closes it.
type depthReader struct {
	conn  *amqp.Connection
	queue string
	ch    *amqp.Channel
}

func newDepthReader(conn *amqp.Connection, queueName string) (*depthReader, error) {
	d := &depthReader{conn: conn, queue: queueName}
	if _, err := d.read(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *depthReader) read() (int, error) {
	if d.ch == nil || d.ch.IsClosed() {
		ch, err := d.conn.Channel()
		if err != nil {
			return 0, fmt.Errorf("bench: open channel: %w", err)
		}
		d.ch = ch
	}
	q, err := d.ch.QueueDeclarePassive(d.queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("bench: depth of %s: %w", d.queue, err)
	}
	return q.Messages, nil
}

func (d *depthReader) close() {
	if d.ch != nil {
		_ = d.ch.Close()
	}
}

// RunWatch writes "<unix ms> <ready messages>" lines for queue to out
// every interval until ctx ends or limit has passed.
func RunWatch(ctx context.Context, urls []string, queueName string, interval, limit time.Duration, out io.Writer) error {
	conn, err := dialBroker(urls)
	if err != nil {
		return err
	}
	defer conn.Close()
	depth, err := newDepthReader(conn, queueName)
	if err != nil {
		return err
	}
	defer depth.close()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		n, err := depth.read()
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "%d %d\n", time.Now().UnixMilli(), n); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// randomNode is a version clock node id that no API replica shares in
// practice.
func randomNode() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}
