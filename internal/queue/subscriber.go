package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Connection *Connection
	Topology   Topology
	// Prefetch is how many unacknowledged messages the broker lets this
	// consumer hold, at most; PrefetchBytes lowers it so that that many
	// messages of the largest size Limits allow fit in PrefetchBytes. (AMQP
	// prefetch counts messages; RabbitMQ does not implement a prefetch in
	// bytes.)
	Prefetch      int
	PrefetchBytes int
	// Limits are the API's; a message beyond them is undecodable.
	Limits kv.Limits
	Logger *slog.Logger
}

// Handler processes the messages of one connection. It returns when
// messages is closed (the connection was lost) or ctx ends; the messages it
// has not settled by then go back to the queue when the channel closes.
type Handler func(ctx context.Context, messages <-chan Message) error

// Subscriber keeps one consuming channel open on the write queue, across
// broker restarts and failovers, and hands its decoded messages to a
// Handler.
type Subscriber struct {
	cfg       SubscriberConfig
	log       *slog.Logger
	consuming atomic.Bool
}

// NewSubscriber returns a Subscriber; Run connects it.
func NewSubscriber(cfg SubscriberConfig) *Subscriber {
	return &Subscriber{cfg: cfg, log: cfg.Logger}
}

// EffectivePrefetch is the prefetch the subscriber asks the broker for:
// Prefetch, lowered so that as many messages of the largest size the
// limits allow fit in PrefetchBytes, and at least one.
func (s *Subscriber) EffectivePrefetch() int {
	if s.cfg.PrefetchBytes <= 0 {
		return s.cfg.Prefetch
	}
	largest := MaxMessageBytes(s.cfg.Limits.MaxKeyBytes+s.cfg.Limits.MaxValueBytes, 1)
	return max(1, min(s.cfg.Prefetch, s.cfg.PrefetchBytes/largest))
}

// Consuming reports whether the subscriber currently has a consuming channel.
func (s *Subscriber) Consuming() bool { return s.consuming.Load() }

// Run consumes until ctx ends, reconnecting whenever the connection or
// channel is lost. It returns only once the handler of the last connection
// has returned, so an in-flight batch is finished first.
func (s *Subscriber) Run(ctx context.Context, handle Handler) {
	s.cfg.Connection.Supervise(ctx, func(ctx context.Context, conn *amqp.Connection, ready func()) error {
		return s.session(ctx, conn, ready, handle)
	})
}

// errDeliveriesClosed reports that the broker or the network ended the
// consuming channel.
var errDeliveriesClosed = errors.New("queue: delivery channel closed")

func (s *Subscriber) session(ctx context.Context, conn *amqp.Connection, ready func(), handle Handler) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("queue: open channel: %w", err)
	}
	defer ch.Close()
	if err := s.cfg.Topology.Declare(ch); err != nil {
		return err
	}
	prefetch := s.EffectivePrefetch()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("queue: set prefetch: %w", err)
	}
	deliveries, err := ch.Consume(s.cfg.Topology.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("queue: consume %s: %w", s.cfg.Topology.Queue, err)
	}
	ready()
	s.consuming.Store(true)
	defer s.consuming.Store(false)
	s.log.Info("consuming", "op", "subscriber.connect", "queue", s.cfg.Topology.Queue, "prefetch", prefetch)

	// The decoder turns deliveries into Messages in delivery order. It ends
	// when the channel closes (which closes deliveries) or the handler is
	// done; the session waits for it either way.
	messages := make(chan Message)
	handlerDone := make(chan struct{})
	var decoder sync.WaitGroup
	decoder.Go(func() {
		defer close(messages)
		for d := range deliveries {
			select {
			case messages <- NewMessage(d.Body, d.MessageId, d.DeliveryTag, d.Acknowledger, s.cfg.Limits):
			case <-handlerDone:
				return
			}
		}
	})
	err = handle(ctx, messages)
	close(handlerDone)
	// Closing the channel returns every unsettled message to the queue and
	// closes deliveries, which ends the decoder.
	_ = ch.Close()
	decoder.Wait()
	if err != nil {
		return err
	}
	if ctx.Err() == nil {
		return errDeliveriesClosed
	}
	return nil
}
