package bench

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClientLimit is the error class of an open-loop request that fell due
// while every worker was busy and the queue in front of them was full: it
// was never sent, and counts as an error of the system under test (it
// could not keep up), not of the client.
const ErrClientLimit = "client_limit"

// Sample is what one request reports to its runner.
type Sample struct {
	// Op labels the request ("GET", "PUT"); results are kept per label.
	Op string
	// Err is empty when the request got the answer a working fleet gives,
	// otherwise a short class ("http_503", "timeout", ...).
	Err string
	// Cached marks a read answered from the cache.
	Cached bool
}

// Do makes request number seq (from 1) of a phase.
type Do func(ctx context.Context, seq uint64) Sample

// opStats is what a Recorder keeps for one label.
type opStats struct {
	hist   Histogram // latencies of the successful requests
	ok     uint64
	cached uint64
	errs   map[string]uint64
}

// Recorder accumulates the samples of one phase. It is safe for
// concurrent use.
type Recorder struct {
	mu    sync.Mutex
	ops   map[string]*opStats
	start time.Time // start of the measured window
	last  time.Time // last recorded completion
	// Of the requests an open loop sent: how late each started after it
	// was due (the client's own delay, or waiting for a free worker), and
	// how long it then took.
	startDelay Histogram
	service    Histogram
	// queued counts the open-loop requests that found every worker busy
	// and the line in front of them full when they fell due.
	queued uint64
}

// NewRecorder returns a recorder whose measured window starts at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{ops: map[string]*opStats{}, start: start}
}

// Add records one request that completed at done after latency.
func (r *Recorder) Add(s Sample, latency time.Duration, done time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.ops[s.Op]
	if st == nil {
		st = &opStats{errs: map[string]uint64{}}
		r.ops[s.Op] = st
	}
	if s.Err == "" {
		st.ok++
		st.hist.Record(latency)
		if s.Cached {
			st.cached++
		}
	} else {
		st.errs[s.Err]++
	}
	if done.After(r.last) {
		r.last = done
	}
}

// AddTiming records when an open-loop request started relative to when
// it was due, and how long its answer then took.
func (r *Recorder) AddTiming(startDelay, service time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startDelay.Record(startDelay)
	r.service.Record(service)
}

// Timing returns what AddTiming recorded and how many requests had to
// wait for a worker; ok is false when nothing was recorded.
func (r *Recorder) Timing() (startDelay, service Summary, queued uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startDelay.Summarize(), r.service.Summarize(), r.queued, r.service.Count() > 0
}

func (r *Recorder) addQueued() {
	r.mu.Lock()
	r.queued++
	r.mu.Unlock()
}

// Elapsed is the measured window: from its start to the last completion,
// but at least min.
func (r *Recorder) Elapsed(min time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(r.last.Sub(r.start), min)
}

// Stats returns the results so far, per label and for all labels
// together, as seen over a window of elapsed.
func (r *Recorder) Stats(elapsed time.Duration) (all OpResult, byOp map[string]OpResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total Histogram
	allErrs := map[string]uint64{}
	byOp = map[string]OpResult{}
	var ok, cached uint64
	for _, name := range slices.Sorted(maps.Keys(r.ops)) {
		st := r.ops[name]
		byOp[name] = opResult(&st.hist, st.ok, st.cached, st.errs, elapsed)
		total.Merge(&st.hist)
		ok += st.ok
		cached += st.cached
		for k, v := range st.errs {
			allErrs[k] += v
		}
	}
	return opResult(&total, ok, cached, allErrs, elapsed), byOp
}

func opResult(h *Histogram, ok, cached uint64, errs map[string]uint64, elapsed time.Duration) OpResult {
	var nerr uint64
	for _, v := range errs {
		nerr += v
	}
	res := OpResult{Requests: ok + nerr, OK: ok, Errors: nerr, Latency: h.Summarize()}
	if nerr > 0 {
		res.ErrorKinds = maps.Clone(errs)
	}
	if ok > 0 {
		res.CachedFraction = round3(float64(cached) / float64(ok))
	}
	if elapsed > 0 {
		res.PerSecond = round1(float64(ok) / elapsed.Seconds())
	}
	return res
}

// ClosedLoop is a phase of Conns clients that each send a request as soon
// as their previous one is answered: it measures the most the target
// serves at that concurrency. Requests started during Warmup are not
// recorded. The phase ends by itself after Warmup+Duration or after
// MaxRequests requests, whichever comes first.
type ClosedLoop struct {
	Conns       int
	Warmup      time.Duration
	Duration    time.Duration
	MaxRequests uint64
}

// Run runs the phase and returns its recorder and the measured window.
func (c ClosedLoop) Run(ctx context.Context, do Do) (*Recorder, time.Duration) {
	start := time.Now()
	warmEnd := start.Add(c.Warmup)
	end := warmEnd.Add(c.Duration)
	rec := NewRecorder(warmEnd)
	var seq atomic.Uint64
	var wg sync.WaitGroup
	for range max(c.Conns, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				sent := time.Now()
				if !sent.Before(end) {
					return
				}
				n := seq.Add(1)
				if c.MaxRequests > 0 && n > c.MaxRequests {
					return
				}
				s := do(ctx, n)
				done := time.Now()
				if !sent.Before(warmEnd) {
					rec.Add(s, done.Sub(sent), done)
				}
			}
		})
	}
	wg.Wait()
	return rec, rec.Elapsed(c.Duration)
}

// OpenLoop is a phase that sends Rate requests per second on a fixed
// schedule whatever the answers take, for Duration (so Rate*Duration
// requests at most). Latency is measured from when a request was due, not
// from when a worker got to it, so a target that falls behind shows it in
// its latency instead of slowing the client down (no coordinated
// omission). At most Workers requests are in flight and as many wait for
// a worker; a request that cannot get in line within MaxLate of when it
// was due is not sent and is recorded as ErrClientLimit.
type OpenLoop struct {
	Rate     int
	Duration time.Duration
	Workers  int
	// MaxLate is how late a request may start (default 1s).
	MaxLate time.Duration
	// Op labels the requests that were not sent (ErrClientLimit).
	Op string
}

// Count is the number of requests the phase sends.
func (o OpenLoop) Count() int {
	return int(int64(o.Rate) * int64(o.Duration) / int64(time.Second))
}

type ticket struct {
	seq uint64
	due time.Time
}

// Run runs the phase and returns its recorder and the measured window.
func (o OpenLoop) Run(ctx context.Context, do Do) (*Recorder, time.Duration) {
	workers := max(o.Workers, 1)
	tickets := make(chan ticket, workers)
	start := time.Now()
	rec := NewRecorder(start)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for t := range tickets {
				started := time.Now()
				s := do(ctx, t.seq)
				done := time.Now()
				rec.Add(s, done.Sub(t.due), done)
				rec.AddTiming(started.Sub(t.due), done.Sub(started))
			}
		})
	}
	o.pace(ctx, start, tickets, rec)
	close(tickets)
	wg.Wait()
	return rec, rec.Elapsed(o.Duration)
}

// pace hands out the phase's tickets on schedule until they are all out
// or ctx ends.
func (o OpenLoop) pace(ctx context.Context, start time.Time, tickets chan<- ticket, rec *Recorder) {
	if o.Rate <= 0 {
		return
	}
	interval := time.Second / time.Duration(o.Rate)
	maxLate := o.MaxLate
	if maxLate <= 0 {
		maxLate = time.Second
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	late := time.NewTimer(time.Hour)
	defer late.Stop()
	for i := range o.Count() {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		t := ticket{seq: uint64(i) + 1, due: due}
		select {
		case tickets <- t:
			continue
		default:
		}
		// Every worker is busy and the line is full: wait for room, but
		// not past MaxLate after the request was due.
		rec.addQueued()
		if wait := time.Until(due.Add(maxLate)); wait > 0 {
			late.Reset(wait)
			select {
			case tickets <- t:
				continue
			case <-late.C:
			case <-ctx.Done():
				return
			}
		}
		rec.Add(Sample{Op: o.Op, Err: ErrClientLimit}, 0, due)
	}
}
