// Package consumer applies queued writes: it gathers decoded messages into
// batches, writes each batch to the database in one statement, updates the
// cache, and only then settles the messages. A message that can never be
// applied is dead-lettered; a database outage holds the batch (no ack, no
// dead-lettering) and retries with backoff until it succeeds or the process
// shuts down. A cache outage does not hold writes: the database is the
// system of record, so the keys whose cache update failed are recorded in
// it, and the Repairer brings their entries up to date once Redis answers.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/queue"
	"github.com/kvfleet/kvfleet/internal/version"
)

// Store is where writes are applied.
type Store interface {
	// Apply writes each item unless a higher version is stored and reports
	// which items it wrote. Keys are distinct.
	Apply(ctx context.Context, items []kv.Item) ([]bool, error)
	// MarkStale records keys whose cache entry may be older than items, for
	// the Repairer.
	MarkStale(ctx context.Context, items []kv.Item) error
}

// Cache is updated with what was applied.
type Cache interface {
	// Update caches each item unless a same or newer version is cached.
	Update(ctx context.Context, items []kv.Item) error
}

// Config tunes a Consumer.
type Config struct {
	// BatchSize, BatchBytes and BatchWait bound a batch: it is applied when
	// it holds BatchSize writes, when the next message would take it over
	// BatchSize writes or its bodies over BatchBytes, or BatchWait after its
	// first message arrived. A message is never split across batches.
	BatchSize  int
	BatchBytes int
	BatchWait  time.Duration
	// DrainTimeout bounds the work on the in-flight batch after shutdown
	// begins; what is not done by then goes back to the queue unacknowledged.
	DrainTimeout time.Duration
	// RetryMin and RetryMax bound the pause between attempts while the
	// database or the cache is failing.
	RetryMin, RetryMax time.Duration
	// TombstoneRetention, when set, refuses puts older than the tombstone
	// retention: the purger may have removed the tombstone of a newer
	// delete, which such a put would then bring back to life.
	TombstoneRetention time.Duration
	// MaxClockSkew, when set, refuses writes whose version is further ahead
	// of this consumer's clock: one replica with a clock running ahead
	// would otherwise win every write to the keys it touches.
	MaxClockSkew time.Duration
	// RowError tells an error that belongs to one row of the batch (bad
	// data, a violated constraint), which no retry will cure, from every
	// other error (an outage, a timeout, a missing table or privilege),
	// which is retried: only the former may dead-letter a write.
	RowError func(error) bool
	Now      func() time.Time
	Logger   *slog.Logger
}

// Consumer is the queue handler that applies writes.
type Consumer struct {
	cfg   Config
	store Store
	cache Cache
	log   *slog.Logger

	writes    *prometheus.CounterVec
	messages  *prometheus.CounterVec
	batchSize prometheus.Histogram
	batchDur  prometheus.Histogram
	lag       prometheus.Histogram
	splits    prometheus.Counter
	marked    prometheus.Counter
	guarded   *prometheus.CounterVec

	// cacheRetryAt is when the cache is next tried after a failed update;
	// until then keys are recorded for repair straight away, since each try
	// costs a whole Redis timeout while Redis is down. Only Handle's
	// goroutine uses it.
	cacheRetryAt time.Time
}

// cacheProbeInterval is how long the consumer leaves the cache alone after
// an update failed.
const cacheProbeInterval = time.Second

// New returns a Consumer.
func New(cfg Config, store Store, cache Cache, reg prometheus.Registerer) *Consumer {
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = int(^uint(0) >> 1)
	}
	f := promauto.With(reg)
	return &Consumer{
		cfg:   cfg,
		store: store,
		cache: cache,
		log:   cfg.Logger,
		writes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_consumer_writes_total",
			Help: "Writes handled by result: applied, superseded (a newer version was already there, or came in the same batch), dead_lettered; retried counts each extra attempt of a held write.",
		}, []string{"result"}),
		messages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_consumer_messages_total",
			Help: "Queue messages settled (each carries one or more writes), by result: acked, dead_lettered.",
		}, []string{"result"}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "kvfleet_consumer_batch_size",
			Help:    "Writes per applied batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
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
		splits: f.NewCounter(prometheus.CounterOpts{
			Name: "kvfleet_consumer_batch_splits_total",
			Help: "Upserts split in two, to isolate a refused write or because the whole batch kept timing out.",
		}),
		guarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_consumer_guarded_total",
			Help: "Writes dead-lettered by a guard, by reason: older_than_retention (a put that could resurrect a purged delete), future_version (a version too far ahead of the clock).",
		}, []string{"reason"}),
		marked: f.NewCounter(prometheus.CounterOpts{
			Name: "kvfleet_cache_marked_stale_total",
			Help: "Applied writes whose cache update failed and whose keys were recorded for repair.",
		}),
	}
}

// Handle is a queue.Handler: it batches and applies messages until they
// stop or ctx ends, finishing the batch in hand either way. Once shutdown
// has begun it starts no new batch: acknowledging a later batch would also
// acknowledge one it had to leave unsettled.
func (c *Consumer) Handle(ctx context.Context, messages <-chan queue.Message) error {
	var (
		batch []queue.Message
		// carried is a message that did not fit in the previous batch.
		carried *queue.Message
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		if carried != nil {
			batch = append(batch, *carried)
			carried = nil
		} else {
			select {
			case <-ctx.Done():
				return nil
			case m, ok := <-messages:
				if !ok {
					return nil
				}
				batch = append(batch, m)
			}
		}
		timer.Reset(c.cfg.BatchWait)
		open := true
		bytes, writes := batch[0].Size, len(batch[0].Writes)
	fill:
		for writes < c.cfg.BatchSize {
			select {
			case m, ok := <-messages:
				if !ok {
					open = false
					break fill
				}
				if bytes+m.Size > c.cfg.BatchBytes || writes+len(m.Writes) > c.cfg.BatchSize {
					carried = &m
					break fill
				}
				bytes += m.Size
				writes += len(m.Writes)
				batch = append(batch, m)
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
		if !settled || !open {
			// An unsettled batch goes back to the queue when the channel
			// closes; nothing after it may be acknowledged on this channel.
			return nil
		}
	}
	return nil
}

// process takes one batch through the pipeline: dead-letter what cannot be
// decoded, reduce to the newest write per key, upsert, update the cache,
// settle. It reports false when shutdown cut it short and the batch is left
// unsettled.
func (c *Consumer) process(ctx context.Context, batch []queue.Message) bool {
	start := c.cfg.Now()
	defer func() { c.batchDur.Observe(c.cfg.Now().Sub(start).Seconds()) }()

	// Once shutdown begins, the batch in hand still gets DrainTimeout to
	// finish; after that it is left unacknowledged for redelivery.
	work, cancel := c.drainContext(ctx)
	defer cancel()

	batch = c.deadLetterUndecodable(batch)
	batch = c.guard(batch)
	if len(batch) == 0 {
		return true
	}
	var writes []kv.Write
	for _, m := range batch {
		writes = append(writes, m.Writes...)
	}
	c.batchSize.Observe(float64(len(writes)))
	newest := kv.Newest(writes)
	applied, refused, err := c.upsert(work, newest)
	if err != nil {
		return false
	}
	if err := c.updateCache(work, applied); err != nil {
		return false
	}
	c.settle(batch, newest, refused)
	return true
}

// deadLetterUndecodable dead-letters the messages that carry no write and
// returns the others, in order.
func (c *Consumer) deadLetterUndecodable(batch []queue.Message) []queue.Message {
	decoded := batch[:0:0]
	for _, m := range batch {
		if m.Err != nil {
			c.deadLetter(m, m.Err)
			continue
		}
		decoded = append(decoded, m)
	}
	return decoded
}

// Reasons a guard refuses a write.
var (
	errOlderThanRetention = errors.New("a put older than the tombstone retention could resurrect a deleted key")
	errFutureVersion      = errors.New("the write's version is too far ahead of the clock")
)

// guard dead-letters the messages that hold a write the configured guards
// refuse and returns the others, in order. Dead-lettered, a refused write
// can still be inspected and replayed by an operator. A message goes whole:
// its writes were grouped by one API replica at one moment, so they share
// the clock the guards judge, and a message is settled as one.
func (c *Consumer) guard(batch []queue.Message) []queue.Message {
	if c.cfg.TombstoneRetention <= 0 && c.cfg.MaxClockSkew <= 0 {
		return batch
	}
	now := c.cfg.Now()
	kept := batch[:0:0]
	for _, m := range batch {
		reason, label := c.refusedByGuard(m.Writes, now)
		if reason == nil {
			kept = append(kept, m)
			continue
		}
		c.guarded.WithLabelValues(label).Add(float64(len(m.Writes)))
		c.deadLetter(m, reason)
	}
	return kept
}

// refusedByGuard returns why a guard refuses the first of writes it
// refuses, and the reason's metric label; nil if it refuses none.
func (c *Consumer) refusedByGuard(writes []kv.Write, now time.Time) (error, string) {
	for _, w := range writes {
		var (
			reason error
			label  string
		)
		switch {
		case c.cfg.MaxClockSkew > 0 && w.Version.Time().After(now.Add(c.cfg.MaxClockSkew)):
			reason, label = errFutureVersion, "future_version"
		case c.cfg.TombstoneRetention > 0 && w.Op == kv.OpPut &&
			w.Version.Less(version.Floor(now.Add(-c.cfg.TombstoneRetention))):
			reason, label = errOlderThanRetention, "older_than_retention"
		}
		if reason != nil {
			return fmt.Errorf("%w (version %s, accepted %s)", reason, w.Version, w.AcceptedAt.Format(time.RFC3339)), label
		}
	}
	return nil, ""
}

// upsert writes the newest writes to the store and returns those the store
// applied and those it refused for good, by key. A group that fails with a
// row error, or keeps timing out, is split in two and each half tried on
// its own, so that one bad or oversized write cannot hold back the others
// and is found in a logarithmic number of statements. It returns an error
// only when the drain deadline ended the retries.
func (c *Consumer) upsert(ctx context.Context, newest []kv.Write) (applied []kv.Write, refused map[string]error, err error) {
	refused = make(map[string]error)
	pending := [][]kv.Write{newest}
	for len(pending) > 0 {
		group := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		written, err := c.storeGroup(ctx, group)
		switch {
		case err == nil:
			applied = append(applied, written...)
			continue
		case errors.Is(err, errRefused):
			refused[group[0].Key] = err
			continue
		case !errors.Is(err, errSplit):
			return nil, nil, err
		}
		c.splits.Inc()
		half := len(group) / 2
		// The second half goes on the stack first so that the first half,
		// and so the batch's order, is tried first.
		pending = append(pending, group[half:], group[:half])
	}
	return applied, refused, nil
}

var (
	// errSplit marks a group that must be split: the store refused one of
	// its rows, or the whole statement keeps timing out.
	errSplit = errors.New("consumer: split the batch")
	// errRefused marks the one write the store refused for good.
	errRefused = errors.New("consumer: the database refused the write")
)

// timeoutsBeforeSplit is how many statement timeouts in a row make a group
// of several writes split: one can be a slow moment of the database, two
// suggest the statement is too big to ever finish.
const timeoutsBeforeSplit = 2

// storeGroup applies one group, retrying through outages, and returns the
// writes the store applied (the others were superseded by newer rows).
func (c *Consumer) storeGroup(ctx context.Context, group []kv.Write) ([]kv.Write, error) {
	items := make([]kv.Item, len(group))
	for i, w := range group {
		items[i] = w.Item()
	}
	timeouts := 0
	written, err := retry(c, ctx, "database", len(items), func() ([]bool, error) {
		written, err := c.store.Apply(ctx, items)
		switch {
		case err == nil:
			return written, nil
		case c.cfg.RowError(err) && len(group) > 1:
			return nil, backoff.Permanent(errSplit)
		case c.cfg.RowError(err):
			return nil, backoff.Permanent(fmt.Errorf("%w: %w", errRefused, err))
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && len(group) > 1:
			if timeouts++; timeouts >= timeoutsBeforeSplit {
				return nil, backoff.Permanent(errSplit)
			}
		}
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	applied := make([]kv.Write, 0, len(group))
	for i, ok := range written {
		if !ok {
			c.writes.WithLabelValues("superseded").Inc()
			continue
		}
		applied = append(applied, group[i])
		c.writes.WithLabelValues("applied").Inc()
		c.lag.Observe(now.Sub(group[i].AcceptedAt).Seconds())
	}
	return applied, nil
}

// updateCache caches the applied writes. If Redis fails, the keys are
// recorded in the database for the Repairer instead (retried like any
// database operation), so that a cache outage never holds writes back from
// the system of record: the batch is settled only once either is done.
func (c *Consumer) updateCache(ctx context.Context, applied []kv.Write) error {
	if len(applied) == 0 {
		return nil
	}
	items := make([]kv.Item, len(applied))
	for i, w := range applied {
		items[i] = w.Item()
	}
	if now := c.cfg.Now(); !now.Before(c.cacheRetryAt) {
		err := c.cache.Update(ctx, items)
		if err == nil {
			return nil
		}
		c.cacheRetryAt = now.Add(cacheProbeInterval)
		c.log.Warn("cache unavailable; recording the keys for repair", "op", "consumer.cache", "err", err, "keys", len(items))
	}
	_, err := retry(c, ctx, "database", len(items), func() (struct{}, error) {
		return struct{}{}, c.store.MarkStale(ctx, items)
	})
	if err == nil {
		c.marked.Add(float64(len(items)))
	}
	return err
}

// retry is the one place where the consumer retries: op runs until it
// succeeds, returns a backoff.Permanent error, or ctx ends. Every extra
// attempt counts each held write as retried.
func retry[T any](c *Consumer, ctx context.Context, what string, held int, op backoff.Operation[T]) (T, error) {
	pause := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.RetryMin,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.cfg.RetryMax,
	}
	return backoff.Retry(ctx, op,
		backoff.WithBackOff(pause),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, next time.Duration) {
			c.writes.WithLabelValues("retried").Add(float64(held))
			c.log.Warn(what+" unavailable; holding the batch and retrying",
				"op", "consumer.apply", "err", err, "writes", held, "retry_in", next)
		}))
}

// settle dead-letters every message that holds a write of a refused key
// (the key's older writes were never applied either) and acknowledges the
// rest with one multiple ack on the last of them: messages arrive in
// delivery order, so no other batch's messages lie below it.
//
// A dead-lettered message may also hold writes of other keys, which were
// applied: replaying it from the dead-letter queue is harmless, because a
// write never overwrites a newer version.
func (c *Consumer) settle(batch []queue.Message, newest []kv.Write, refused map[string]error) {
	var last *queue.Message
	kept, acked := 0, 0
	for i, m := range batch {
		if err := refusal(m, refused); err != nil {
			c.deadLetter(m, err)
			continue
		}
		last = &batch[i]
		kept += len(m.Writes)
		acked++
	}
	// Every kept write but one per stored key was made unnecessary by
	// another write of the batch: an older write of its key, or a repeated
	// delivery of the same write. (The one per key was counted as applied
	// or superseded by the store.) The count is exact unless a message
	// dead-lettered for a refused key also held the newest write of another
	// key: that write counts as dead-lettered and as applied.
	c.writes.WithLabelValues("superseded").Add(float64(max(0, kept-(len(newest)-len(refused)))))
	if last == nil {
		return
	}
	if err := last.AckThrough(); err != nil {
		c.log.Warn("acknowledgement failed; the batch will be redelivered and re-applied harmlessly",
			"op", "consumer.ack", "err", err)
		return
	}
	c.messages.WithLabelValues("acked").Add(float64(acked))
}

// refusal returns why the store refused one of m's writes, or nil.
func refusal(m queue.Message, refused map[string]error) error {
	for _, w := range m.Writes {
		if err, ok := refused[w.Key]; ok {
			return err
		}
	}
	return nil
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

// deadLetter rejects a message without requeueing, which routes it to the
// dead-letter exchange.
func (c *Consumer) deadLetter(m queue.Message, reason error) {
	c.messages.WithLabelValues("dead_lettered").Inc()
	c.writes.WithLabelValues("dead_lettered").Add(float64(len(m.Writes)))
	c.log.Warn("message cannot be applied; dead-lettering it", "op", "consumer.dead_letter", "msg_id", m.ID, "writes", len(m.Writes), "err", reason)
	if err := m.DeadLetter(); err != nil {
		c.log.Warn("reject failed; the message will be redelivered", "op", "consumer.reject", "msg_id", m.ID, "err", err)
	}
}
