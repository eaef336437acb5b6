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
	ErrNacked       = errors.New("queue: the broker did not confirm the message")
	ErrUnroutable   = errors.New("queue: the broker could not route the message to the write queue")
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Connection *Connection
	Topology   Topology
	// Channels is the number of confirm-mode channels shared by all
	// concurrent publishes. Each channel pipelines many outstanding
	// messages; more than one spreads the work of the client library.
	Channels int
	// Timeout bounds a publish, from the call to the broker's confirm.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Publisher publishes writes with publisher confirms over a supervised
// connection. Concurrent publishes share a few confirm-mode channels and
// each waits only for its own confirm (tracked by delivery tag inside
// amqp091's deferred confirmations), so confirms are pipelined rather than
// serialized.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	session    atomic.Pointer[publishSession]
	blocked    atomic.Bool
	roundRobin atomic.Uint64

	published  *prometheus.CounterVec
	confirmDur prometheus.Histogram
	inFlight   prometheus.Gauge
}

// NewPublisher returns a Publisher; Run connects it.
func NewPublisher(cfg PublisherConfig, reg prometheus.Registerer) *Publisher {
	if cfg.Channels < 1 {
		cfg.Channels = 1
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
			Help:    "Time from publishing a write to the broker's confirm.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "kvfleet_publish_in_flight",
			Help: "Publishes waiting for the broker's confirm.",
		}),
	}
}

// Connected reports whether the publisher currently has a broker connection.
func (p *Publisher) Connected() bool { return p.session.Load() != nil }

// Publish sends w and returns nil once the broker has confirmed it, which
// for a persistent message on a quorum queue means a majority of the
// cluster has written it. Any other outcome is an error: the caller must not
// report the write as accepted.
func (p *Publisher) Publish(ctx context.Context, w kv.Write) error {
	body, err := Encode(w)
	if err != nil {
		p.published.WithLabelValues("error").Inc()
		return err
	}
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
	ch := sess.channels[p.roundRobin.Add(1)%uint64(len(sess.channels))]
	msgID := w.Version.String()
	start := time.Now()
	result, err := ch.publish(ctx, p.cfg.Topology.Queue, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    msgID,
		Timestamp:    w.AcceptedAt,
		Type:         w.Op.String(),
		Body:         body,
	})
	p.published.WithLabelValues(result).Inc()
	if err != nil {
		return fmt.Errorf("queue: publish: %w", err)
	}
	p.confirmDur.Observe(time.Since(start).Seconds())
	return nil
}

// Run keeps the publisher connected until ctx ends: on every connection
// it declares the topology and opens the confirm channels. Publishes fail
// fast with ErrNotConnected while there is no connection.
func (p *Publisher) Run(ctx context.Context) {
	p.cfg.Connection.Supervise(ctx, p.serve)
}

// serve publishes over conn until it or one of its channels is lost.
func (p *Publisher) serve(ctx context.Context, conn *amqp.Connection, ready func()) error {
	sess := &publishSession{lost: make(chan error, 1)}
	// Closing the connection ends the watchers, and releases the publishes
	// still waiting for a confirm with an error.
	defer func() {
		_ = conn.Close()
		sess.watches.Wait()
	}()
	if err := p.open(conn, sess); err != nil {
		return err
	}
	p.blocked.Store(false)
	p.session.Store(sess)
	defer p.session.Store(nil)
	ready()
	select {
	case <-ctx.Done():
		return nil
	case lost := <-sess.lost:
		return lost
	}
}

// publishSession is one connection's confirm channels.
type publishSession struct {
	channels []*confirmChannel
	// lost receives the first reason the connection or a channel closed.
	lost    chan error
	watches sync.WaitGroup
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
