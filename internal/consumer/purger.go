package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kvfleet/kvfleet/internal/version"
)

// TombstoneStore deletes old tombstones.
type TombstoneStore interface {
	PurgeTombstones(ctx context.Context, before version.Version, limit int) (int64, error)
}

// Purger deletes tombstones once they are older than the retention. The
// retention must exceed any delay a write can spend in the queue: a put
// older than a purged tombstone would bring its key back.
type Purger struct {
	Store     TombstoneStore
	Retention time.Duration
	Interval  time.Duration
	// BatchLimit bounds each delete statement so that a large purge does not
	// hold locks for long.
	BatchLimit int
	Now        func() time.Time
	Logger     *slog.Logger

	purged prometheus.Counter
}

// NewPurger returns a Purger with its metric registered.
func NewPurger(p Purger, reg prometheus.Registerer) *Purger {
	if p.BatchLimit <= 0 {
		p.BatchLimit = 1000
	}
	p.purged = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "kvfleet_tombstones_purged_total",
		Help: "Tombstones deleted after the retention period.",
	})
	return &p
}

// Run purges every Interval until ctx ends. Several consumers may run it at
// once: the delete is idempotent.
func (p *Purger) Run(ctx context.Context) error {
	ticker := time.NewTicker(p.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		n, err := p.PurgeOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.Logger.Warn("tombstone purge failed; will retry next interval", "op", "purger.run", "err", err)
		case n > 0:
			p.Logger.Info("tombstones purged", "op", "purger.run", "count", n)
		}
	}
}

// PurgeOnce deletes every tombstone older than the retention, a batch at a
// time, and returns how many it deleted.
func (p *Purger) PurgeOnce(ctx context.Context) (int64, error) {
	cutoff := version.Floor(p.Now().Add(-p.Retention))
	var total int64
	for {
		n, err := p.Store.PurgeTombstones(ctx, cutoff, p.BatchLimit)
		total += n
		p.purged.Add(float64(n))
		if err != nil || n < int64(p.BatchLimit) {
			return total, err
		}
	}
}
