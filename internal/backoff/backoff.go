// Package backoff paces retries: capped exponential backoff with full
// jitter, so that many processes retrying against a recovering server do not
// retry in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing, randomized pauses. It is not safe for concurrent
// use: each retry loop owns one.
type Backoff struct {
	first, next, max time.Duration
}

// New returns a Backoff whose pauses start below first and never exceed max.
func New(first, max time.Duration) *Backoff {
	if first <= 0 {
		first = 50 * time.Millisecond
	}
	if max < first {
		max = first
	}
	return &Backoff{first: first, next: first, max: max}
}

// Next returns the next pause: uniform in (0, ceiling], where the ceiling
// doubles on every call up to max.
func (b *Backoff) Next() time.Duration {
	d := time.Duration(rand.Int64N(int64(b.next))) + 1
	b.next = min(2*b.next, b.max)
	return d
}

// Reset starts the sequence again after a success.
func (b *Backoff) Reset() { b.next = b.first }

// Wait sleeps for the next pause, or returns ctx's error if ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
