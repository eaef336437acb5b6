package load

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acceptAll answers every request as a healthy fleet would, at once.
type acceptAll struct{ calls atomic.Int64 }

func (a *acceptAll) Do(_ context.Context, r Request) Outcome {
	n := a.calls.Add(1)
	o := Outcome{Request: r, Sent: time.Now()}
	if r.Op.IsWrite() {
		o.Status, o.Version = 202, ver(n)
	} else {
		o.Status, o.Code = 404, "not_found"
	}
	return o
}

func keys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = fmt.Sprintf("key-%d", i)
	}
	return k
}

func TestRunSendsTheScheduleAndStopsByItself(t *testing.T) {
	d := &acceptAll{}
	r, err := Start(t.Context(), d, Plan{
		Keys: keys(10), WriteRate: 1000, ReadRate: 500, DeleteFraction: 0.25,
		ValueBytes: 40, Tag: "t", MaxInFlight: 64, MaxDuration: 200 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := r.Wait()
	var puts, deletes, gets int
	values := map[string]bool{}
	for _, o := range outcomes {
		switch o.Op {
		case OpPut:
			puts++
			if values[o.Value] {
				t.Fatalf("value %q sent twice", o.Value)
			}
			values[o.Value] = true
			if len(o.Value) < 40 || !strings.HasPrefix(o.Value, "t:") {
				t.Fatalf("value %q: want the tag first and at least 40 bytes", o.Value)
			}
		case OpDelete:
			deletes++
		case OpGet:
			gets++
		}
		if o.Intended.Before(r.Started()) {
			t.Fatalf("request due before the run started: %+v", o)
		}
	}
	// 200 ms at 1000 writes/s and 500 reads/s, however long it took.
	if puts+deletes != 200 || gets != 100 {
		t.Fatalf("sent %d writes and %d reads, want 200 and 100", puts+deletes, gets)
	}
	if deletes < 20 || deletes > 80 {
		t.Fatalf("%d of 200 writes were deletes, want about a quarter", deletes)
	}
	if int(d.calls.Load()) != len(outcomes) {
		t.Fatalf("%d calls but %d outcomes", d.calls.Load(), len(outcomes))
	}
}

func TestRunSequentialWritesEveryKeyOnce(t *testing.T) {
	r, err := Start(t.Context(), &acceptAll{}, Plan{
		Keys: keys(50), WriteRate: 1000, Tag: "seed", MaxInFlight: 8, MaxDuration: time.Minute, Sequential: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range r.Wait() {
		if o.Op != OpPut {
			t.Fatalf("seeding sent a %v", o.Op)
		}
		seen[o.Key]++
	}
	if len(seen) != 50 {
		t.Fatalf("seeded %d keys, want 50", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s written %d times", k, n)
		}
	}
}

// blocked holds every request until released.
type blocked struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *blocked) Do(ctx context.Context, r Request) Outcome {
	b.calls.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return Outcome{Request: r, Status: 202, Version: ver(1)}
}

func TestRunDoesNotWaitForASlowFleet(t *testing.T) {
	d := &blocked{release: make(chan struct{})}
	r, err := Start(t.Context(), d, Plan{
		Keys: keys(5), WriteRate: 1000, Tag: "t", MaxInFlight: 2, MaxDuration: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The two requests in flight never answer until released: every other
	// one falls due meanwhile and is recorded as not sent.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.outcomes)
		r.mu.Unlock()
		if n == 18 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outcomes recorded while two requests hang, want 18", n)
		}
		time.Sleep(time.Millisecond)
	}
	close(d.release)
	var limited, answered int
	for _, o := range r.Wait() {
		switch o.Failure {
		case FailClientLimit:
			limited++
			if !o.NotApplied() || o.Available() {
				t.Fatalf("a request not sent must count as unavailable and not applied: %+v", o)
			}
		case "":
			answered++
		}
	}
	if limited != 18 || answered != 2 || d.calls.Load() != 2 {
		t.Fatalf("limited %d, answered %d, calls %d; want 18, 2, 2", limited, answered, d.calls.Load())
	}
}

func TestStopEndsTheRunAndKeepsTheAnswersInFlight(t *testing.T) {
	d := &blocked{release: make(chan struct{})}
	r, err := Start(t.Context(), d, Plan{
		Keys: keys(5), WriteRate: 100, Tag: "t", MaxInFlight: 10, MaxDuration: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	for d.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var outcomes []Outcome
	var wg sync.WaitGroup
	wg.Go(func() { outcomes = r.Stop() })
	close(d.release)
	wg.Wait()
	if len(outcomes) == 0 || int64(len(outcomes)) != d.calls.Load() {
		t.Fatalf("Stop returned %d outcomes for %d requests sent", len(outcomes), d.calls.Load())
	}
	for _, o := range outcomes {
		if !o.Acknowledged() {
			t.Fatalf("the answer of a request in flight at Stop was lost: %+v", o)
		}
	}
}

func TestPlanValidation(t *testing.T) {
	good := Plan{Keys: keys(1), WriteRate: 1, Tag: "t", MaxInFlight: 1, MaxDuration: time.Second}
	if _, err := Start(t.Context(), &acceptAll{}, good); err != nil {
		t.Fatalf("a good plan: %v", err)
	}
	for name, mutate := range map[string]func(*Plan){
		"no keys":         func(p *Plan) { p.Keys = nil },
		"no traffic":      func(p *Plan) { p.WriteRate = 0 },
		"negative rate":   func(p *Plan) { p.ReadRate = -1 },
		"delete fraction": func(p *Plan) { p.DeleteFraction = 1.5 },
		"no limit":        func(p *Plan) { p.MaxInFlight = 0 },
		"unbounded":       func(p *Plan) { p.MaxDuration = 0 },
		"no tag":          func(p *Plan) { p.Tag = "" },
	} {
		p := good
		mutate(&p)
		if _, err := Start(t.Context(), &acceptAll{}, p); err == nil {
			t.Errorf("%s: Start accepted %+v", name, p)
		}
	}
}
