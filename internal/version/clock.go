package version

import (
	"sync/atomic"
	"time"
)

// Clock issues strictly increasing versions for one replica. It is safe for
// concurrent use and lock-free, so it costs a request almost nothing.
//
// The reading follows wall-clock time when that moves forward and counts
// logically when it does not (many writes in one millisecond, or a clock
// stepped backwards), so Next never repeats or goes back while the process
// lives. Across a restart it stays monotonic as long as the wall clock has not
// been stepped back by more than the restart took; replicas' versions follow
// real time as closely as their clocks agree (NTP keeps that to milliseconds).
type Clock struct {
	node uint64
	now  func() time.Time
	last atomic.Uint64
}

// NewClock returns a clock for the replica with the given node id. now is the
// wall clock (time.Now outside tests).
func NewClock(node uint64, now func() time.Time) *Clock {
	return &Clock{node: node, now: now}
}

// Node returns the replica id stamped on every version this clock issues.
func (c *Clock) Node() uint64 { return c.node }

// Next returns a version higher than every version this clock issued or
// observed before.
func (c *Clock) Next() Version {
	physical := uint64(c.now().UnixMilli()) << logicalBits
	for {
		last := c.last.Load()
		next := last + 1
		if physical > last {
			next = physical
		}
		if c.last.CompareAndSwap(last, next) {
			return Version{HLC: next, Node: c.node}
		}
	}
}

// Observe moves the clock past a version seen elsewhere, so that versions
// issued afterwards order after it (the receive rule of a hybrid logical
// clock).
func (c *Clock) Observe(v Version) {
	for {
		last := c.last.Load()
		if v.HLC <= last || c.last.CompareAndSwap(last, v.HLC) {
			return
		}
	}
}
