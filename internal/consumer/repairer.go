package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kvfleet/kvfleet/internal/kv"
)

// RepairLog is the database's record of keys whose cache entry may be stale.
type RepairLog interface {
	// Stale returns up to limit recorded keys as their current rows.
	Stale(ctx context.Context, limit int) ([]kv.Item, error)
	// Unmark forgets the records at or below items' versions.
	Unmark(ctx context.Context, items []kv.Item) error
}

// Repairer copies the current rows of the keys recorded by the consumer
// into the cache once Redis answers again, with the same version rule as
// every cache write, and then forgets them. Several consumers may run one
// each: a repeated repair changes nothing.
type Repairer struct {
	Log   RepairLog
	Cache Cache
	// Interval is how often it looks for recorded keys; with the cache
	// outage, it bounds how long a repaired entry stays stale.
	Interval time.Duration
	// BatchLimit bounds the keys repaired per statement.
	BatchLimit int
	Logger     *slog.Logger

	repaired prometheus.Counter
}

// NewRepairer returns a Repairer with its metric registered.
func NewRepairer(r Repairer, reg prometheus.Registerer) *Repairer {
	if r.BatchLimit <= 0 {
		r.BatchLimit = 500
	}
	r.repaired = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "kvfleet_cache_repaired_total",
		Help: "Cache entries brought up to date after a cache outage.",
	})
	return &r
}

// Run repairs every Interval until ctx ends. A failure (Redis or the
// database still down) is logged and tried again at the next tick.
func (r *Repairer) Run(ctx context.Context) {
	ticker := time.NewTicker(r.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if n, err := r.RepairOnce(ctx); err != nil && ctx.Err() == nil {
			r.Logger.Warn("cache repair failed; trying again later", "op", "consumer.repair", "repaired", n, "err", err)
		} else if n > 0 {
			r.Logger.Info("cache entries repaired", "op", "consumer.repair", "repaired", n)
		}
	}
}

// RepairOnce repairs every recorded key, a batch at a time, and returns
// how many it repaired.
func (r *Repairer) RepairOnce(ctx context.Context) (int, error) {
	total := 0
	for {
		items, err := r.Log.Stale(ctx, r.BatchLimit)
		if err != nil || len(items) == 0 {
			return total, err
		}
		if err := r.Cache.Update(ctx, items); err != nil {
			return total, err
		}
		if err := r.Log.Unmark(ctx, items); err != nil {
			return total, err
		}
		total += len(items)
		r.repaired.Add(float64(len(items)))
		if len(items) < r.BatchLimit {
			return total, nil
		}
	}
}
