// Package consumer applies queued writes: it decodes deliveries, gathers
// them into batches, writes each batch to the database in one statement,
// updates the cache, and only then acknowledges. A message that can never
// be applied is dead-lettered at once; a database or cache outage holds the
// batch (no ack, no dead-lettering) and retries with backoff until it
// succeeds or the process shuts down.
package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kvfleet/kvfleet/internal/backoff"
	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
)

// Store is where writes are applied.
type Store interface {
	// Apply writes each item unless a higher version is stored and reports
	// which items it wrote. Keys are distinct.
	Apply(ctx context.Context, items []kv.Item) ([]bool, error)
}

// Cache is updated with what was applied.
type Cache interface {
	// Update caches each item unless a same or newer version is cached.
	Update(ctx context.Context, items []kv.Item) error
}

// Config tunes a Consumer.
type Config struct {
	Limits kv.Limits
	// BatchSize and BatchWait bound a batch: it is applied when it holds
	// BatchSize messages or BatchWait after its first message arrived.
	BatchSize int
	BatchWait time.Duration
	// DrainTimeout bounds the work on the in-flight batch after shutdown
	// begins; what is not done by then goes back to the queue unacknowledged.
	DrainTimeout time.Duration
	// RetryMin and RetryMax bound the pause between attempts while the
	// database or the cache is failing.
	RetryMin, RetryMax time.Duration
	// Transient tells an error worth retrying (the database is down) from
	// one that will recur (the message cannot be stored).
	Transient func(error) bool
	Now       func() time.Time
	Logger    *slog.Logger
}

// Consumer is the queue handler that applies writes.
type Consumer struct {
	cfg   Config
	store Store
	cache Cache
	log   *slog.Logger

	messages  *prometheus.CounterVec
	batchSize prometheus.Histogram
	batchDur  prometheus.Histogram
	lag       prometheus.Histogram
}

// New returns a Consumer.
func New(cfg Config, store Store, cache Cache, reg prometheus.Registerer) *Consumer {
	f := promauto.With(reg)
	return &Consumer{
		cfg:   cfg,
		store: store,
		cache: cache,
		log:   cfg.Logger,
		messages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_consumer_messages_total",
			Help: "Messages handled by result: applied, superseded (a newer version was already there), dead_lettered; retried counts each extra attempt of a held message.",
		}, []string{"result"}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvfleet_consumer_batch_size",
			Help:    "Messages per applied batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		batchDur: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvfleet_consumer_batch_duration_seconds",
			Help:    "Time to apply a batch: database, cache and acknowledgement, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}),
		lag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvfleet_write_apply_lag_seconds",
			Help:    "Time from a write's acceptance at the API to its database commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16),
		}),
	}
}

// Handle is a queue.Handler: it batches and applies deliveries until they
// stop or ctx ends, finishing the batch in hand either way. Once shutdown
// has begun it starts no new batch: a later multiple ack would also cover
// a batch it had to leave unacknowledged.
func (c *Consumer) Handle(ctx context.Context, deliveries <-chan amqp.Delivery) error {
	batch := make([]amqp.Delivery, 0, c.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return nil
			}
			batch = append(batch, d)
		}
		timer.Reset(c.cfg.BatchWait)
		open := true
	fill:
		for len(batch) < c.cfg.BatchSize {
			select {
			case d, ok := <-deliveries:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, d)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				break fill
			}
		}
		timer.Stop()
		settled := c.process(ctx, batch)
		clear(batch)
		batch = batch[:0]
		if !open || !settled {
			// An unsettled batch goes back to the queue when the channel
			// closes; nothing after it may be acknowledged on this channel.
			return nil
		}
	}
}

// pending is a decoded delivery waiting to be applied.
type pending struct {
	delivery amqp.Delivery
	write    kv.Write
}

// process applies one batch and settles every message in it. It reports
// false when shutdown cut it short and the batch is left unacknowledged.
func (c *Consumer) process(ctx context.Context, batch []amqp.Delivery) bool {
	start := c.cfg.Now()
	c.batchSize.Observe(float64(len(batch)))
	defer func() { c.batchDur.Observe(c.cfg.Now().Sub(start).Seconds()) }()

	// Once shutdown begins, the batch in hand still gets DrainTimeout to
	// finish; after that it is left unacknowledged for redelivery.
	work, cancel := c.drainContext(ctx)
	defer cancel()

	msgs := make([]pending, 0, len(batch))
	writes := make([]kv.Write, 0, len(batch))
	for _, d := range batch {
		w, err := queue.Decode(d.Body, c.cfg.Limits)
		if err != nil {
			c.deadLetter(d, err)
			continue
		}
		msgs = append(msgs, pending{delivery: d, write: w})
		writes = append(writes, w)
	}
	if len(msgs) == 0 {
		return true
	}
	newest := kv.Newest(writes)
	rejected, err := c.apply(work, newest, msgs)
	if err != nil {
		// Shutdown came first: closing the channel returns the batch.
		return false
	}
	c.countSupersededInBatch(msgs, newest, rejected)
	// Everything else in the batch is done: acknowledge it with one
	// multiple ack on the highest tag still outstanding (this loop handles
	// deliveries in tag order, so no other batch's messages lie below it).
	var last *amqp.Delivery
	for i := range msgs {
		if _, gone := rejected[msgs[i].delivery.DeliveryTag]; !gone {
			last = &msgs[i].delivery
		}
	}
	if last == nil {
		return true
	}
	if err := last.Ack(true); err != nil {
		c.log.Warn("acknowledgement failed; the batch will be redelivered and re-applied harmlessly",
			"op", "consumer.ack", "err", err)
	}
	return true
}

// countSupersededInBatch counts the messages that another message of the
// same key in the same batch made unnecessary: a newer write or a second
// delivery of the same one. apply counted the one message per key it used.
func (c *Consumer) countSupersededInBatch(msgs []pending, newest []kv.Write, rejected map[uint64]struct{}) {
	unclaimed := make(map[string]kv.Write, len(newest))
	for _, w := range newest {
		unclaimed[w.Key] = w
	}
	n := 0
	for _, m := range msgs {
		if _, gone := rejected[m.delivery.DeliveryTag]; gone {
			continue
		}
		if w, ok := unclaimed[m.write.Key]; ok && w.Version == m.write.Version {
			delete(unclaimed, m.write.Key)
			continue
		}
		n++
	}
	c.messages.WithLabelValues("superseded").Add(float64(n))
}

// drainContext returns the context a batch is worked under: it outlives
// ctx by DrainTimeout.
func (c *Consumer) drainContext(ctx context.Context) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(c.cfg.DrainTimeout, cancel)
	})
	return work, func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// apply writes the newest write of each key to the store and the cache,
// retrying through outages. A write the store refuses for good is isolated
// and its messages dead-lettered; apply returns their delivery tags. It
// returns an error only if the drain deadline ended the retries.
func (c *Consumer) apply(ctx context.Context, writes []kv.Write, msgs []pending) (map[uint64]struct{}, error) {
	items := make([]kv.Item, len(writes))
	for i, w := range writes {
		items[i] = w.Item()
	}
	applied, err := c.storeWithRetry(ctx, items)
	switch {
	case errors.Is(err, errPermanent) && len(writes) == 1:
		return c.deadLetterWrite(msgs, writes[0], err), nil
	case errors.Is(err, errPermanent):
		// One bad write must not hold back the others: apply one by one.
		rejected := make(map[uint64]struct{})
		for i := range writes {
			r, err := c.apply(ctx, writes[i:i+1], msgs)
			if err != nil {
				return nil, err
			}
			for tag := range r {
				rejected[tag] = struct{}{}
			}
		}
		return rejected, nil
	case err != nil:
		return nil, err
	}

	now := c.cfg.Now()
	written := make([]kv.Item, 0, len(items))
	for i, ok := range applied {
		if !ok {
			c.messages.WithLabelValues("superseded").Inc()
			continue
		}
		written = append(written, items[i])
		c.messages.WithLabelValues("applied").Inc()
		c.lag.Observe(now.Sub(writes[i].AcceptedAt).Seconds())
	}
	if err := c.cacheWithRetry(ctx, written); err != nil {
		return nil, err
	}
	return nil, nil
}

// errPermanent marks a store error that retrying will not cure.
var errPermanent = errors.New("permanent store error")

func (c *Consumer) storeWithRetry(ctx context.Context, items []kv.Item) ([]bool, error) {
	pause := backoff.New(c.cfg.RetryMin, c.cfg.RetryMax)
	for {
		applied, err := c.store.Apply(ctx, items)
		switch {
		case err == nil:
			return applied, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !c.cfg.Transient(err):
			return nil, errors.Join(errPermanent, err)
		}
		c.messages.WithLabelValues("retried").Add(float64(len(items)))
		c.log.Warn("database unavailable; holding the batch and retrying", "op", "consumer.apply", "err", err, "items", len(items))
		if err := pause.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

func (c *Consumer) cacheWithRetry(ctx context.Context, items []kv.Item) error {
	pause := backoff.New(c.cfg.RetryMin, c.cfg.RetryMax)
	for {
		err := c.cache.Update(ctx, items)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// The database already holds these writes; retrying re-applies them
		// harmlessly. Acknowledging without the cache update could leave a
		// stale entry for a whole TTL.
		c.messages.WithLabelValues("retried").Add(float64(len(items)))
		c.log.Warn("cache unavailable; holding the batch and retrying", "op", "consumer.cache", "err", err, "items", len(items))
		if err := pause.Wait(ctx); err != nil {
			return err
		}
	}
}

// deadLetter rejects an undecodable delivery without requeueing, which
// routes it to the dead-letter exchange.
func (c *Consumer) deadLetter(d amqp.Delivery, reason error) {
	c.messages.WithLabelValues("dead_lettered").Inc()
	c.log.Warn("message cannot be applied; dead-lettering it", "op", "consumer.decode", "msg_id", d.MessageId, "err", reason)
	if err := d.Reject(false); err != nil {
		c.log.Warn("reject failed; the message will be redelivered", "op", "consumer.reject", "msg_id", d.MessageId, "err", err)
	}
}

// deadLetterWrite dead-letters every message of the key whose newest write
// the store refused (its older writes were never applied either) and
// returns their delivery tags.
func (c *Consumer) deadLetterWrite(msgs []pending, w kv.Write, reason error) map[uint64]struct{} {
	rejected := make(map[uint64]struct{})
	for _, m := range msgs {
		if m.write.Key == w.Key {
			c.deadLetter(m.delivery, reason)
			rejected[m.delivery.DeliveryTag] = struct{}{}
		}
	}
	return rejected
}
