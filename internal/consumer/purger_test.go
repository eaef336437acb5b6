package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvfleet/kvfleet/internal/consumer"
	"github.com/kvfleet/kvfleet/internal/version"
)

// purgeCall is one PurgeTombstones call.
type purgeCall struct {
	before version.Version
	limit  int
}

// scriptedTombstones answers PurgeTombstones with counts in turn (then 0)
// and fails on call failAt (1-based) when it is set.
type scriptedTombstones struct {
	mu     sync.Mutex
	counts []int64
	failAt int
	calls  []purgeCall
	called chan struct{}
}

var errPurge = errors.New("purge failed")

func (s *scriptedTombstones) PurgeTombstones(_ context.Context, before version.Version, limit int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, purgeCall{before, limit})
	if s.called != nil {
		select {
		case s.called <- struct{}{}:
		default:
		}
	}
	if len(s.calls) == s.failAt {
		return 0, errPurge
	}
	if len(s.calls) > len(s.counts) {
		return 0, nil
	}
	return s.counts[len(s.calls)-1], nil
}

func (s *scriptedTombstones) recorded() []purgeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]purgeCall(nil), s.calls...)
}

func purgedTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "kvfleet_tombstones_purged_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("kvfleet_tombstones_purged_total is not registered")
	return 0
}

func TestPurgeOnce(t *testing.T) {
	now := time.Date(2025, 9, 10, 11, 12, 13, 14_000_000, time.UTC)
	const retention = 72 * time.Hour
	cutoff := version.Floor(now.Add(-retention))
	tests := []struct {
		name      string
		counts    []int64
		failAt    int
		wantCalls int
		wantTotal int64
		wantErr   error
	}{
		{"nothing to purge", nil, 0, 1, 0, nil},
		{"less than a batch", []int64{7}, 0, 1, 7, nil},
		{"full batches then a partial one", []int64{10, 10, 3}, 0, 3, 23, nil},
		{"a full batch then nothing", []int64{10, 0}, 0, 2, 10, nil},
		{"error on the first call", nil, 1, 1, 0, errPurge},
		{"error after a full batch keeps the count", []int64{10, 10}, 2, 2, 10, errPurge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &scriptedTombstones{counts: tt.counts, failAt: tt.failAt}
			reg := prometheus.NewRegistry()
			p := consumer.NewPurger(consumer.Purger{
				Store: store, Retention: retention, Interval: time.Hour, BatchLimit: 10,
				Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
			}, reg)
			total, err := p.PurgeOnce(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("PurgeOnce error = %v, want %v", err, tt.wantErr)
			}
			if total != tt.wantTotal {
				t.Errorf("PurgeOnce = %d, want %d", total, tt.wantTotal)
			}
			calls := store.recorded()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d PurgeTombstones calls, want %d", len(calls), tt.wantCalls)
			}
			for i, c := range calls {
				if want := (purgeCall{cutoff, 10}); !reflect.DeepEqual(c, want) {
					t.Errorf("call %d = %+v, want %+v", i, c, want)
				}
			}
			if got := purgedTotal(t, reg); got != float64(tt.wantTotal) {
				t.Errorf("kvfleet_tombstones_purged_total = %v, want %d", got, tt.wantTotal)
			}
		})
	}
}

func TestPurgeCutoffSparesRecentTombstones(t *testing.T) {
	now := time.Date(2025, 9, 10, 11, 12, 13, 0, time.UTC)
	store := &scriptedTombstones{}
	p := consumer.NewPurger(consumer.Purger{
		Store: store, Retention: time.Hour, Interval: time.Hour, BatchLimit: 100,
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
	}, prometheus.NewRegistry())
	if _, err := p.PurgeOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := store.recorded()[0].before
	// A tombstone written exactly at the retention boundary or later stays;
	// one written a millisecond earlier is purged.
	boundary := version.NewClock(9, func() time.Time { return now.Add(-time.Hour) }).Next()
	earlier := version.NewClock(9, func() time.Time { return now.Add(-time.Hour - time.Millisecond) }).Next()
	if boundary.Less(before) {
		t.Errorf("cut-off %v would purge a tombstone %v written exactly one retention ago", before, boundary)
	}
	if !earlier.Less(before) {
		t.Errorf("cut-off %v would keep a tombstone %v older than the retention", before, earlier)
	}
}

func TestPurgerRunPurgesUntilCancelled(t *testing.T) {
	store := &scriptedTombstones{counts: []int64{4}, called: make(chan struct{}, 1)}
	reg := prometheus.NewRegistry()
	p := consumer.NewPurger(consumer.Purger{
		Store: store, Retention: time.Hour, Interval: time.Millisecond, BatchLimit: 10,
		Now: time.Now, Logger: slog.New(slog.DiscardHandler),
	}, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-store.called:
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("Run never purged")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if got := purgedTotal(t, reg); got < 4 {
		t.Errorf("kvfleet_tombstones_purged_total = %v, want at least 4", got)
	}
}
