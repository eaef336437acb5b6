package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// Errors a publish can end with. None of them means the write was lost: the
// client was told it was not accepted and may retry.
var (
	ErrNotConnected = errors.New("queue: not connected to the broker")
	ErrBlocked      = errors.New("queue: the broker is blocking publishers (resource alarm)")
	// ErrNacked is the broker's refusal of a message. A quorum queue
	// refuses one when it is at its byte bound (overflow reject-publish),
	// so it wraps kv.ErrQueueFull.
	ErrNacked     = fmt.Errorf("queue: the broker refused the message: %w", kv.ErrQueueFull)
	ErrUnroutable = errors.New("queue: the broker could not route the message to the write queue")
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Connection *Connection
	Topology   Topology
	// Channels is the number of confirm-mode channels shared by all
	// concurrent publishes; more than one spreads the work of the client
	// library.
	Channels int
	// Pipeline is how many messages may await the broker's confirm at once,
	// across the channels. While that many are out, the writes of new
	// requests wait and are then sent together, up to MaxBatch writes and
	// MaxBatchBytes of keys and values in one message.
	Pipeline      int
	MaxBatch      int
	MaxBatchBytes int
	// Timeout bounds a publish, from the call to the broker's confirm.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Publisher publishes writes with publisher confirms over a supervised
// connection.
//
// It commits writes in groups. A quorum queue's cost is per message: each is
// replicated to a majority of the nodes and confirmed, and on a busy broker
// that cost, not the bytes, sets how many writes per second it takes. So the
// publisher keeps at most Pipeline messages unconfirmed; a write that
// arrives while they are all out waits for the next free slot and goes in
// one message with the other writes that waited meanwhile. A lone write on
// an idle publisher goes at once, on its own: grouping costs no latency
// when there is nothing to group, and grows with the load it relieves. Each
// write's request is answered when the message carrying it is confirmed.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	session atomic.Pointer[publishSession]
	blocked atomic.Bool

	published  *prometheus.CounterVec
	confirmDur prometheus.Histogram
	inFlight   prometheus.Gauge
	batchSize  prometheus.Histogram
}

// NewPublisher returns a Publisher; Run connects it.
func NewPublisher(cfg PublisherConfig, reg prometheus.Registerer) *Publisher {
	cfg.Channels = max(cfg.Channels, 1)
	cfg.Pipeline = max(cfg.Pipeline, cfg.Channels)
	cfg.MaxBatch = max(cfg.MaxBatch, 1)
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = int(^uint(0) >> 1)
	}
	f := promauto.With(reg)
	return &Publisher{
		cfg: cfg,
		log: cfg.Logger,
		published: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_publish_total",
			Help: "Writes published to the broker, by result: confirmed, nacked, unroutable, timeout, not_connected, blocked, error.",
		}, []string{"result"}),
		confirmDur: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvfleet_publish_confirm_duration_seconds",
			Help:    "Time from a write's publish call to the broker's confirm of the message carrying it, waiting for a free slot included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "kvfleet_publish_in_flight",
			Help: "Writes waiting for the broker's confirm, or for a free slot to be sent in.",
		}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvfleet_publish_batch_size",
			Help:    "Writes per published message.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
	}
}

// Connected reports whether the publisher currently has a broker connection.
func (p *Publisher) Connected() bool { return p.session.Load() != nil }

// publishRequest is one write waiting to be sent and confirmed.
type publishRequest struct {
	ctx   context.Context
	write kv.Write
	// done receives the outcome of the message that carried the write.
	done chan outcome
}

// outcome is how a message's publish ended: a result label for the metrics
// and, unless it was confirmed, the error.
type outcome struct {
	result string
	err    error
}

// Publish sends w and returns nil once the broker has confirmed it, which
// for a persistent message on a quorum queue means a majority of the
// cluster has written it. Any other outcome is an error: the caller must not
// report the write as accepted.
func (p *Publisher) Publish(ctx context.Context, w kv.Write) error {
	sess := p.session.Load()
	if sess == nil {
		p.published.WithLabelValues("not_connected").Inc()
		return ErrNotConnected
	}
	if p.blocked.Load() {
		// A blocked connection accepts bytes but never confirms; failing
		// at once beats holding the client for the whole timeout.
		p.published.WithLabelValues("blocked").Inc()
		return ErrBlocked
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	p.inFlight.Inc()
	defer p.inFlight.Dec()
	start := time.Now()

	o := sess.submit(ctx, &publishRequest{ctx: ctx, write: w, done: make(chan outcome, 1)})
	p.published.WithLabelValues(o.result).Inc()
	if o.err != nil {
		return fmt.Errorf("queue: publish: %w", o.err)
	}
	p.confirmDur.Observe(time.Since(start).Seconds())
	return nil
}

// Run keeps the publisher connected until ctx ends: on every connection
// it declares the topology, opens the confirm channels and starts the
// senders. Publishes fail fast with ErrNotConnected while there is no
// connection.
func (p *Publisher) Run(ctx context.Context) {
	p.cfg.Connection.Supervise(ctx, p.serve)
}

// serve publishes over conn until it or one of its channels is lost.
func (p *Publisher) serve(ctx context.Context, conn *amqp.Connection, ready func()) error {
	sess := &publishSession{
		lost:    make(chan error, 1),
		pending: make(chan *publishRequest, pendingRequests),
		closed:  make(chan struct{}),
		drained: make(chan struct{}),
	}
	if err := p.open(conn, sess); err != nil {
		_ = conn.Close()
		sess.watches.Wait()
		return err
	}
	p.blocked.Store(false)
	for i := range p.cfg.Pipeline {
		ch := sess.channels[i%len(sess.channels)]
		sess.senders.Go(func() { p.send(ctx, sess, ch) })
	}
	p.session.Store(sess)
	ready()

	var err error
	select {
	case <-ctx.Done():
	case err = <-sess.lost:
	}
	// Stop taking requests, release the confirms still awaited (closing the
	// connection ends them as not acknowledged), and answer every request
	// that no sender took.
	p.session.Store(nil)
	close(sess.closed)
	_ = conn.Close()
	sess.senders.Wait()
	sess.watches.Wait()
	sess.failPending()
	close(sess.drained)
	return err
}

// pendingRequests bounds the writes waiting for a sender; beyond it a
// publish waits (within its timeout) to be queued. The API's in-flight
// limit keeps it from being reached in practice.
const pendingRequests = 4096

// publishSession is one connection's confirm channels and senders.
type publishSession struct {
	channels []*confirmChannel
	// pending holds the writes waiting for a sender.
	pending chan *publishRequest
	// closed is closed when the session stops taking requests; drained when
	// every request it took has been answered.
	closed, drained chan struct{}
	senders         sync.WaitGroup
	// lost receives the first reason the connection or a channel closed.
	lost    chan error
	watches sync.WaitGroup
}

// submit queues req for a sender and waits for its outcome, its context's
// end, or the session's end.
func (s *publishSession) submit(ctx context.Context, req *publishRequest) outcome {
	select {
	case s.pending <- req:
	case <-s.closed:
		return outcome{"not_connected", ErrNotConnected}
	case <-ctx.Done():
		return outcome{"timeout", fmt.Errorf("waiting to be sent: %w", ctx.Err())}
	}
	select {
	case o := <-req.done:
		return o
	case <-ctx.Done():
		return outcome{"timeout", fmt.Errorf("waiting for confirm: %w", ctx.Err())}
	case <-s.drained:
		// Every sender has stopped and every pending request has been
		// answered; one queued after that drain will never be.
		select {
		case o := <-req.done:
			return o
		default:
			return outcome{"not_connected", ErrNotConnected}
		}
	}
}

// failPending answers the requests that no sender took.
func (s *publishSession) failPending() {
	for {
		select {
		case req := <-s.pending:
			req.done <- outcome{"not_connected", ErrNotConnected}
		default:
			return
		}
	}
}

// send is one of the session's Pipeline senders: it takes the next waiting
// write, groups with it every write that waited meanwhile (within the
// bounds), publishes them as one message on ch, and answers them all with
// the confirm. It ends with the session.
func (p *Publisher) send(ctx context.Context, sess *publishSession, ch *confirmChannel) {
	var (
		group []*publishRequest
		// carried is a write that did not fit in the previous group.
		carried *publishRequest
	)
	writes := make([]kv.Write, 0, p.cfg.MaxBatch)
	for {
		group = group[:0]
		if carried != nil {
			group, carried = append(group, carried), nil
		} else {
			select {
			case <-sess.closed:
				return
			case req := <-sess.pending:
				group = append(group, req)
			}
		}
		bytes := writeBytes(group[0].write)
	fill:
		for len(group) < p.cfg.MaxBatch {
			select {
			case req := <-sess.pending:
				if n := writeBytes(req.write); bytes+n > p.cfg.MaxBatchBytes {
					carried = req
					break fill
				} else {
					bytes += n
				}
				group = append(group, req)
			default:
				break fill
			}
		}
		// A request whose caller has given up is not sent: its client was
		// told that the write was not accepted.
		writes = writes[:0]
		live := group[:0]
		for _, req := range group {
			if req.ctx.Err() == nil {
				live = append(live, req)
				writes = append(writes, req.write)
			}
		}
		if len(live) == 0 {
			continue
		}
		o := p.publishGroup(ctx, ch, writes)
		for _, req := range live {
			req.done <- o
		}
		clear(group)
	}
}

// writeBytes is what a write adds to a message, for the batch bound: its key
// and value (the envelope's fixed fields are small beside the limit).
func writeBytes(w kv.Write) int { return len(w.Key) + len(w.Value) }

// publishGroup publishes writes as one message and waits for its confirm.
func (p *Publisher) publishGroup(ctx context.Context, ch *confirmChannel, writes []kv.Write) outcome {
	body, err := EncodeBatch(writes)
	if err != nil {
		return outcome{"error", err}
	}
	p.batchSize.Observe(float64(len(writes)))
	kind := "batch"
	if len(writes) == 1 {
		kind = writes[0].Op.String()
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	// Versions are unique per write, so the first one names the message.
	result, err := ch.publish(ctx, p.cfg.Topology.Queue, amqp.Publishing{
		ContentType:  ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    writes[0].Version.String(),
		Timestamp:    writes[0].AcceptedAt,
		Type:         kind,
		Body:         body,
	})
	return outcome{result, err}
}

// open declares the topology and opens sess's confirm channels on conn,
// with watchers that report the connection's loss and blocking.
func (p *Publisher) open(conn *amqp.Connection, sess *publishSession) error {
	sess.watch(conn.NotifyClose(make(chan *amqp.Error, 1)))
	blocking := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	sess.watches.Go(func() {
		for b := range blocking {
			p.blocked.Store(b.Active)
			if b.Active {
				p.log.Warn("broker is blocking publishers", "op", "publisher.blocked", "reason", b.Reason)
			}
		}
	})

	setup, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("queue: open channel: %w", err)
	}
	if err := p.cfg.Topology.Declare(setup); err != nil {
		return err
	}
	_ = setup.Close()

	for range p.cfg.Channels {
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("queue: open channel: %w", err)
		}
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("queue: confirm mode: %w", err)
		}
		sess.watch(ch.NotifyClose(make(chan *amqp.Error, 1)))
		sess.channels = append(sess.channels, newConfirmChannel(ch))
	}
	return nil
}

// watch forwards the first close notification to sess.lost.
func (s *publishSession) watch(closed chan *amqp.Error) {
	s.watches.Go(func() {
		if err, ok := <-closed; ok {
			select {
			case s.lost <- fmt.Errorf("%w", err):
			default:
			}
		}
		for range closed {
		}
	})
}

// confirmChannel is a confirm-mode channel plus the bookkeeping that turns
// the broker's basic.return (the message reached no queue) into an error
// for the one publish it concerns.
//
// Returns are collected by the publishes themselves rather than by a
// goroutine: the broker sends basic.return before the basic.ack of the same
// message and amqp091 handles a channel's frames in order, so once a
// publish has its confirm, its return (if any) is already in the buffer or in
// the map, and draining the buffer under the lock leaves no third place for
// it to be. Every publish drains, whatever its outcome, so the buffer holds
// at most the returns of the publishes still in flight.
type confirmChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return

	mu       sync.Mutex
	returned map[string]struct{}
}

const (
	// returnBuffer must exceed the publishes in flight on a channel that can
	// be returned at once; amqp091 drops a return after 5 s if it is full.
	returnBuffer = 4096
	// maxRememberedReturns bounds the ids of returned messages whose
	// publishes gave up before collecting them.
	maxRememberedReturns = 10000
)

func newConfirmChannel(ch *amqp.Channel) *confirmChannel {
	return &confirmChannel{
		ch:       ch,
		returns:  ch.NotifyReturn(make(chan amqp.Return, returnBuffer)),
		returned: make(map[string]struct{}),
	}
}

// takeReturn drains the buffered returns into the map and reports whether
// msgID was among the returned messages, forgetting it.
func (c *confirmChannel) takeReturn(msgID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
drain:
	for {
		select {
		case r, ok := <-c.returns:
			if !ok {
				break drain
			}
			if len(c.returned) >= maxRememberedReturns {
				clear(c.returned)
			}
			c.returned[r.MessageId] = struct{}{}
		default:
			break drain
		}
	}
	_, ok := c.returned[msgID]
	delete(c.returned, msgID)
	return ok
}

// publish sends msg to the default exchange with the mandatory flag and
// waits for its confirm. It returns the result label for the metrics.
func (c *confirmChannel) publish(ctx context.Context, queue string, msg amqp.Publishing) (string, error) {
	dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		return "error", err
	}
	acked, err := dc.WaitContext(ctx)
	returned := c.takeReturn(msg.MessageId)
	switch {
	case err != nil:
		return "timeout", fmt.Errorf("waiting for confirm: %w", err)
	case !acked:
		return "nacked", ErrNacked
	case returned:
		return "unroutable", ErrUnroutable
	}
	return "confirmed", nil
}
