package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClosedLoopStopsAtItsCount(t *testing.T) {
	var calls atomic.Uint64
	do := func(_ context.Context, seq uint64) Sample {
		calls.Add(1)
		if seq%10 == 0 {
			return Sample{Op: "GET", Err: "http_503"}
		}
		return Sample{Op: "GET", Cached: seq%2 == 0}
	}
	rec, elapsed := ClosedLoop{Conns: 8, Duration: time.Minute, MaxRequests: 1000}.Run(t.Context(), do)
	if calls.Load() != 1000 {
		t.Fatalf("made %d requests, want exactly 1000", calls.Load())
	}
	all, byOp := rec.Stats(elapsed)
	if all.Requests != 1000 || all.OK != 900 || all.Errors != 100 || all.ErrorKinds["http_503"] != 100 {
		t.Fatalf("stats %+v", all)
	}
	// Even requests are cached, and every tenth failed: 400 of 900.
	if all.CachedFraction != 0.444 || len(byOp) != 1 || byOp["GET"].OK != 900 {
		t.Fatalf("cached fraction %v, by op %+v", all.CachedFraction, byOp)
	}
	if all.Latency.Count != 900 {
		t.Fatalf("latencies of %d requests, want the 900 that succeeded", all.Latency.Count)
	}
}

func TestClosedLoopStopsAtItsDuration(t *testing.T) {
	do := func(ctx context.Context, _ uint64) Sample {
		_ = sleep(ctx, time.Millisecond)
		return Sample{Op: "GET"}
	}
	start := time.Now()
	rec, _ := ClosedLoop{Conns: 4, Warmup: 50 * time.Millisecond, Duration: 100 * time.Millisecond}.Run(t.Context(), do)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a 150 ms phase took %v", took)
	}
	all, _ := rec.Stats(time.Second)
	if all.Requests == 0 {
		t.Fatal("nothing recorded after the warm-up")
	}
}

func TestClosedLoopStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var once sync.Once
	do := func(ctx context.Context, _ uint64) Sample {
		once.Do(cancel)
		return Sample{Op: "GET"}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ClosedLoop{Conns: 4, Duration: time.Hour}.Run(ctx, do)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
}

func TestOpenLoopSendsItsScheduleAndCountsWhatItCouldNotSend(t *testing.T) {
	release := make(chan struct{})
	var sent atomic.Int64
	do := func(ctx context.Context, _ uint64) Sample {
		sent.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Sample{Op: "PUT"}
	}
	// 200 requests due within 100 ms; 2 workers are stuck for 300 ms and 2
	// more requests wait for them: the other 196 cannot start within 50 ms
	// of when they were due and are not sent.
	l := OpenLoop{Rate: 2000, Duration: 100 * time.Millisecond, Workers: 2, MaxLate: 50 * time.Millisecond, Op: "PUT"}
	if l.Count() != 200 {
		t.Fatalf("Count = %d", l.Count())
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(release)
	}()
	rec, _ := l.Run(t.Context(), do)
	all, byOp := rec.Stats(time.Second)
	if all.Requests != 200 || all.OK != 4 || all.ErrorKinds[ErrClientLimit] != 196 || sent.Load() != 4 {
		t.Fatalf("stats %+v, sent %d", all, sent.Load())
	}
	// The 196 not sent found every worker busy; so may the 2 that then
	// waited, if they fell due before the workers had taken their first
	// tickets off the line (goroutine start-up on a busy machine).
	if _, _, queued, _ := rec.Timing(); queued < 196 || queued > 198 {
		t.Fatalf("%d requests counted as waiting for a worker, want 196 to 198", queued)
	}
	if byOp["PUT"].Errors != 196 {
		t.Fatalf("the requests not sent are not labelled PUT: %+v", byOp)
	}
	// The requests that waited were late: latency is counted from when
	// they were due, so it includes the stall.
	if all.Latency.MaxMS < 200 {
		t.Fatalf("max latency %v ms; the stall of ~300 ms is hidden", all.Latency.MaxMS)
	}
}

func TestOpenLoopKeepsItsRate(t *testing.T) {
	var n atomic.Int64
	do := func(context.Context, uint64) Sample {
		n.Add(1)
		return Sample{Op: "GET"}
	}
	start := time.Now()
	rec, elapsed := OpenLoop{Rate: 1000, Duration: 200 * time.Millisecond, Workers: 8}.Run(t.Context(), do)
	if n.Load() != 200 {
		t.Fatalf("sent %d, want 200", n.Load())
	}
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Fatalf("200 requests at 1000/s went out in %v: the schedule was not kept", took)
	}
	all, _ := rec.Stats(elapsed)
	if all.OK != 200 || all.PerSecond <= 0 {
		t.Fatalf("stats %+v", all)
	}
}

func TestRecorderStatsByOp(t *testing.T) {
	t0 := time.Now()
	rec := NewRecorder(t0)
	for i := range 90 {
		rec.Add(Sample{Op: "GET", Cached: true}, time.Duration(i+1)*time.Millisecond, t0.Add(time.Second))
	}
	for range 10 {
		rec.Add(Sample{Op: "PUT"}, 50*time.Millisecond, t0.Add(2*time.Second))
	}
	rec.Add(Sample{Op: "PUT", Err: "timeout"}, 0, t0.Add(time.Second))
	el := rec.Elapsed(time.Millisecond)
	if el != 2*time.Second {
		t.Fatalf("Elapsed = %v, want until the last completion", el)
	}
	all, byOp := rec.Stats(el)
	if all.OK != 100 || all.Errors != 1 || all.PerSecond != 50 {
		t.Fatalf("all %+v", all)
	}
	if g, p := byOp["GET"], byOp["PUT"]; g.OK != 90 || g.PerSecond != 45 || p.OK != 10 || p.Errors != 1 || p.Latency.P50MS != 50 {
		t.Fatalf("GET %+v PUT %+v", g, p)
	}
	if all.Latency.Count != 100 || all.Latency.MaxMS != 90 {
		t.Fatalf("merged latency %+v", all.Latency)
	}
}
