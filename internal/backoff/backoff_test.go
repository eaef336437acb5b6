package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/backoff"
)

func TestPausesGrowToTheCapAndReset(t *testing.T) {
	// The pause is random up to a ceiling that doubles up to the cap:
	// check the bound of the i-th pause on many fresh sequences.
	ceilings := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, ceiling := range ceilings {
		ceiling *= time.Millisecond
		for range 200 {
			b := backoff.New(10*time.Millisecond, 80*time.Millisecond)
			for range i {
				b.Next()
			}
			if d := b.Next(); d <= 0 || d > ceiling {
				t.Fatalf("pause %d = %v, want in (0, %v]", i, d, ceiling)
			}
		}
	}
	for range 200 {
		b := backoff.New(10*time.Millisecond, 80*time.Millisecond)
		for range 5 {
			b.Next()
		}
		b.Reset()
		if d := b.Next(); d > 10*time.Millisecond {
			t.Fatalf("pause after Reset = %v, want at most 10ms", d)
		}
	}
}

func TestBadBoundsAreCorrected(t *testing.T) {
	if d := backoff.New(0, 0).Next(); d <= 0 || d > 50*time.Millisecond {
		t.Fatalf("default first pause = %v, want in (0, 50ms]", d)
	}
	b := backoff.New(time.Second, time.Millisecond) // max below first
	for range 5 {
		if d := b.Next(); d > time.Second {
			t.Fatalf("pause = %v above the first pause used as the cap", d)
		}
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.New(time.Hour, time.Hour).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
	if err := backoff.New(time.Millisecond, time.Millisecond).Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}
