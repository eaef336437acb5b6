package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/backoff"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Dialer   *Dialer
	Topology Topology
	// Prefetch is how many unacknowledged messages the broker lets this
	// consumer hold; it must be at least the consumer's batch size.
	Prefetch int
	Logger   *slog.Logger
}

// Handler processes the deliveries of one connection. It returns when
// deliveries is closed (the connection was lost) or ctx ends; the messages
// it has not acknowledged by then go back to the queue when the channel
// closes.
type Handler func(ctx context.Context, deliveries <-chan amqp.Delivery) error

// Subscriber keeps one consuming channel open on the write queue, across
// broker restarts and failovers, and hands its deliveries to a Handler.
type Subscriber struct {
	cfg       SubscriberConfig
	log       *slog.Logger
	consuming atomic.Bool
	connected prometheus.Gauge
}

// Consuming reports whether the subscriber currently has a consuming channel.
func (s *Subscriber) Consuming() bool { return s.consuming.Load() }

// NewSubscriber returns a Subscriber; Run connects it.
func NewSubscriber(cfg SubscriberConfig, reg prometheus.Registerer) *Subscriber {
	return &Subscriber{
		cfg: cfg,
		log: cfg.Logger,
		connected: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "kvfleet_broker_connected",
			Help: "1 while the process holds a working broker connection.",
		}),
	}
}

// Run consumes until ctx ends, reconnecting with backoff whenever the
// connection or channel is lost. It returns only once the handler of the
// last connection has returned, so an in-flight batch is finished first.
func (s *Subscriber) Run(ctx context.Context, handle Handler) error {
	pause := backoff.New(100*time.Millisecond, 10*time.Second)
	for {
		consumed, err := s.session(ctx, handle)
		if ctx.Err() != nil {
			return nil
		}
		if consumed {
			pause.Reset()
		}
		s.log.Warn("broker connection lost; reconnecting", "op", "subscriber.run", "err", err)
		if pause.Wait(ctx) != nil {
			return nil
		}
	}
}

// errDeliveriesClosed reports that the broker or the network ended the
// consuming channel.
var errDeliveriesClosed = errors.New("queue: delivery channel closed")

// session runs one connection; consumed reports whether it got as far as
// consuming, so that Run only backs off further on repeated failures.
func (s *Subscriber) session(ctx context.Context, handle Handler) (consumed bool, err error) {
	conn, err := s.cfg.Dialer.Dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("queue: open channel: %w", err)
	}
	if err := s.cfg.Topology.Declare(ch); err != nil {
		return false, err
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("queue: set prefetch: %w", err)
	}
	deliveries, err := ch.Consume(s.cfg.Topology.Queue, "", false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("queue: consume %s: %w", s.cfg.Topology.Queue, err)
	}
	s.connected.Set(1)
	s.consuming.Store(true)
	defer func() {
		s.connected.Set(0)
		s.consuming.Store(false)
	}()
	s.log.Info("consuming", "op", "subscriber.connect", "queue", s.cfg.Topology.Queue, "prefetch", s.cfg.Prefetch)
	if err := handle(ctx, deliveries); err != nil {
		return true, err
	}
	if ctx.Err() == nil {
		return true, errDeliveriesClosed
	}
	return true, nil
}
