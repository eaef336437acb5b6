package bench

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLadderRates(t *testing.T) {
	cases := []struct {
		l    Ladder
		want []int
	}{
		{Ladder{Start: 1000, Factor: 1.25, Steps: 5}, []int{1000, 1250, 1563, 1954, 2443}},
		{Ladder{Start: 1000, Factor: 1.5, Steps: 10, Max: 3000}, []int{1000, 1500, 2250}},
		{Ladder{Start: 1, Factor: 1.1, Steps: 4}, []int{1, 2, 3, 4}}, // always at least +1
		{Ladder{Start: 0, Factor: 2, Steps: 3}, []int{1, 2, 4}},
		{Ladder{Start: 500, Factor: 2, Steps: 0}, nil},
	}
	for _, tc := range cases {
		if got := tc.l.Rates(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v.Rates() = %v, want %v", tc.l, got, tc.want)
		}
	}
	below := []struct {
		l    Ladder
		want []int
	}{
		{Ladder{Start: 89, Factor: 1.5, Floor: 5, Down: 6}, []int{59, 39, 26, 17, 11, 7}}, // bounded by Down
		{Ladder{Start: 20, Factor: 2, Floor: 5, Down: 10}, []int{10, 5}},                  // ends on the floor
		{Ladder{Start: 12, Factor: 2, Floor: 5, Down: 10}, []int{6, 5}},                   // the floor, not under it
		{Ladder{Start: 3, Factor: 1.1, Down: 5}, []int{2, 1}},                             // always at least -1, floor 1
		{Ladder{Start: 5, Factor: 2, Floor: 5, Down: 3}, nil},                             // starts on the floor
		{Ladder{Start: 1000, Factor: 2, Floor: 5}, nil},                                   // no step down
	}
	for _, tc := range below {
		if got := tc.l.Below(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v.Below() = %v, want %v", tc.l, got, tc.want)
		}
	}
	if got := DescendingRates(1000, 0.8, 4); !slices.Equal(got, []int{1000, 800, 640, 512}) {
		t.Errorf("DescendingRates = %v", got)
	}
}

func step(rate int, ok, errs uint64, p99 float64, perSecond float64, growing bool) Phase {
	p := Phase{Loop: "open", TargetRate: rate, Queue: &QueueTrend{Growing: growing, GrowthPerSecond: 500}}
	p.Requests, p.OK, p.Errors, p.PerSecond = ok+errs, ok, errs, perSecond
	if errs > 0 {
		p.ErrorKinds = map[string]uint64{"http_503_queue_unavailable": errs}
	}
	p.Latency.P99MS = p99
	return p
}

func TestBoundJudge(t *testing.T) {
	b := Bound{MaxErrorRatio: 0.001, MaxP99MS: 100, MinAchieved: 0.97, QueueMustNotGrow: true}
	cases := []struct {
		name string
		p    Phase
		want string // prefix
	}{
		{"clean", step(1000, 10000, 0, 12, 999, false), "pass"},
		{"errors", step(1000, 9900, 100, 12, 990, false), "errors 1.00% > 0.10% (http_503_queue_unavailable x100)"},
		{"slow", step(1000, 10000, 0, 250, 1000, false), "p99 250.0 ms > 100 ms"},
		{"short of the rate", step(1000, 9000, 0, 12, 900, false), "achieved 900/s < 97% of 1000/s"},
		{"queue growing", step(1000, 10000, 0, 12, 1000, true), "queue grew by 500/s"},
	}
	for _, tc := range cases {
		if got := b.Judge(&tc.p); got != tc.want {
			t.Errorf("%s: Judge = %q, want %q", tc.name, got, tc.want)
		}
	}
	noQueue := step(1000, 10000, 0, 12, 1000, false)
	noQueue.Queue = nil
	if got := b.Judge(&noQueue); got != "queue depth unknown" {
		t.Errorf("without queue figures: %q", got)
	}
	if got := (Bound{MaxErrorRatio: 0.01}).Judge(&noQueue); got != "pass" {
		t.Errorf("a bound without latency or queue rules: %q", got)
	}
}

// fleetAt fakes a target that serves up to capacity per second cleanly.
func fleetAt(capacity int, ran *[]int) StepFunc {
	return func(_ context.Context, rate int) (Phase, error) {
		*ran = append(*ran, rate)
		if rate <= capacity {
			return step(rate, uint64(rate*10), 0, 10, float64(rate), false), nil
		}
		return step(rate, uint64(capacity*10), 0, 900, float64(capacity), true), nil
	}
}

func TestAscendStopsAtTheFirstFailure(t *testing.T) {
	var ran []int
	b := Bound{MaxErrorRatio: 0.001, MaxP99MS: 100, MinAchieved: 0.97, QueueMustNotGrow: true}
	steps, best, err := Ascend(t.Context(), []int{500, 1000, 2000, 4000, 8000}, b, fleetAt(2500, &ran))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []int{500, 1000, 2000, 4000}) {
		t.Fatalf("ran %v; want it to stop after the first failing step", ran)
	}
	if best != 2 || steps[best].TargetRate != 2000 {
		t.Fatalf("best = %d, want the 2000/s step", best)
	}
	if !strings.HasPrefix(steps[3].Verdict, "p99") {
		t.Fatalf("failing step's verdict %q", steps[3].Verdict)
	}
	var none []int
	_, best, _ = Ascend(t.Context(), []int{5000}, b, fleetAt(2500, &none))
	if best != -1 {
		t.Fatalf("no step passed, best = %d", best)
	}
}

func TestDescendStopsAtTheFirstPass(t *testing.T) {
	var ran []int
	b := Bound{MaxErrorRatio: 0.001, MinAchieved: 0.97, QueueMustNotGrow: true}
	steps, best, err := Descend(t.Context(), []int{4000, 3200, 2560, 2048}, b, fleetAt(2600, &ran))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []int{4000, 3200, 2560}) || best != 2 || steps[best].TargetRate != 2560 {
		t.Fatalf("ran %v best %d", ran, best)
	}
	boom := errors.New("boom")
	_, _, err = Descend(t.Context(), []int{1}, b, func(context.Context, int) (Phase, error) { return Phase{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the step's error", err)
	}
}

func rates(steps []Phase) []int {
	var out []int
	for _, s := range steps {
		out = append(out, s.TargetRate)
	}
	return out
}

// rateOf is p's target rate, 0 for none.
func rateOf(p *Phase) int {
	if p == nil {
		return 0
	}
	return p.TargetRate
}

func TestClimbStepsDownWhenTheFirstStepFails(t *testing.T) {
	b := Bound{MaxErrorRatio: 0.001, MaxP99MS: 100, MinAchieved: 0.97, QueueMustNotGrow: true}
	cases := []struct {
		name      string
		l         Ladder
		capacity  int
		ran       []int
		steps     []int // rates of the steps returned
		saturated int   // rate of Saturated(), 0: none
		failure   int   // rate of FirstFailure(), 0: none
	}{
		{"first step passes: up until a failure, as before",
			Ladder{Start: 500, Factor: 2, Steps: 5, Floor: 5, Down: 6}, 2500,
			[]int{500, 1000, 2000, 4000}, []int{500, 1000, 2000, 4000}, 2000, 4000},
		{"first step passes and the ladder runs out",
			Ladder{Start: 500, Factor: 2, Steps: 2, Floor: 5, Down: 6}, 2500,
			[]int{500, 1000}, []int{500, 1000}, 1000, 0},
		{"first step fails: down until a pass",
			Ladder{Start: 1000, Factor: 2, Steps: 5, Floor: 5, Down: 6}, 300,
			[]int{1000, 500, 250}, []int{250, 500, 1000}, 250, 500},
		{"every step fails down to the floor",
			Ladder{Start: 100, Factor: 2, Steps: 5, Floor: 5, Down: 10}, 2,
			[]int{100, 50, 25, 13, 7, 5}, []int{5, 7, 13, 25, 50, 100}, 0, 5},
		{"every step fails until the steps down run out",
			Ladder{Start: 1000, Factor: 2, Steps: 5, Floor: 5, Down: 3}, 0,
			[]int{1000, 500, 250, 125}, []int{125, 250, 500, 1000}, 0, 125},
		{"no step down allowed",
			Ladder{Start: 1000, Factor: 2, Steps: 5, Floor: 5}, 300,
			[]int{1000}, []int{1000}, 0, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ran []int
			steps, best, err := Climb(t.Context(), tc.l, b, fleetAt(tc.capacity, &ran))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ran, tc.ran) {
				t.Errorf("ran %v, want %v", ran, tc.ran)
			}
			if got := rates(steps); !slices.Equal(got, tc.steps) {
				t.Errorf("steps %v, want %v (ascending)", got, tc.steps)
			}
			c := Curve{Steps: steps, Saturation: best}
			if got := rateOf(c.Saturated()); got != tc.saturated {
				t.Errorf("saturated at %d/s (index %d), want %d/s", got, best, tc.saturated)
			}
			if got := rateOf(c.FirstFailure()); got != tc.failure {
				t.Errorf("first failure at %d/s, want %d/s", got, tc.failure)
			}
			for _, s := range steps {
				if want := s.TargetRate <= tc.capacity; (s.Verdict == "pass") != want {
					t.Errorf("%d/s judged %q", s.TargetRate, s.Verdict)
				}
			}
		})
	}
}

func TestClimbEndsWhenTheContextIsCancelled(t *testing.T) {
	b := Bound{MaxErrorRatio: 0.001, MaxP99MS: 100, MinAchieved: 0.97}
	l := Ladder{Start: 1000, Factor: 2, Steps: 5, Floor: 5, Down: 6}
	cases := []struct {
		name     string
		cancelAt int
		// reports says whether the step function returns the context's
		// error, as the benchmark's does, or ignores it.
		reports bool
		ran     []int
		steps   []int
	}{
		{"during a step down", 500, true, []int{1000, 500}, []int{1000}},
		{"during the first step, by a step function that does not say", 1000, false, []int{1000}, []int{1000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var ran []int
			fleet := fleetAt(10, &ran)
			steps, best, err := Climb(ctx, l, b, func(ctx context.Context, rate int) (Phase, error) {
				if rate == tc.cancelAt {
					cancel()
				}
				p, _ := fleet(ctx, rate)
				if tc.reports {
					return p, ctx.Err()
				}
				return p, nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if !slices.Equal(ran, tc.ran) || !slices.Equal(rates(steps), tc.steps) || best != -1 {
				t.Fatalf("ran %v, steps %v, best %d; want ran %v, steps %v, best -1", ran, rates(steps), best, tc.ran, tc.steps)
			}
		})
	}
}

func TestTrend(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var growing, flat []DepthSample
	for i := range 41 {
		at := t0.Add(time.Duration(i) * 250 * time.Millisecond)
		growing = append(growing, DepthSample{At: at, Ready: 300 * i / 4}) // 300/s
		flat = append(flat, DepthSample{At: at, Ready: []int{0, 40, 120, 3}[i%4]})
	}
	g := Trend(growing, t0, t0.Add(10*time.Second), 2000, "amqp")
	if !g.Growing || g.GrowthPerSecond < 295 || g.GrowthPerSecond > 305 || g.Start != 0 || g.End != 3000 || g.Max != 3000 || g.Samples != 41 {
		t.Fatalf("growing queue: %+v", g)
	}
	f := Trend(flat, t0, t0.Add(10*time.Second), 2000, "amqp")
	if f.Growing || f.Max != 120 {
		t.Fatalf("a queue that comes and goes is not growing: %+v", f)
	}
	// Samples outside the window are ignored.
	w := Trend(growing, t0.Add(9*time.Second), t0.Add(10*time.Second), 2000, "amqp")
	if w.Samples != 5 || w.Start != 2700 {
		t.Fatalf("windowed: %+v", w)
	}
	if e := Trend(nil, t0, t0, 1, "amqp"); e.Samples != 0 || e.Growing {
		t.Fatalf("no samples: %+v", e)
	}
	// Slow growth below 2 % of the rate is noise.
	var slow []DepthSample
	for i := range 41 {
		slow = append(slow, DepthSample{At: t0.Add(time.Duration(i) * 250 * time.Millisecond), Ready: 15 * i / 4})
	}
	if s := Trend(slow, t0, t0.Add(10*time.Second), 2000, "amqp"); s.Growing {
		t.Fatalf("15/s at 2000/s counted as growth: %+v", s)
	}
}

func TestCurveNamesItsSaturationAndItsFirstFailure(t *testing.T) {
	pass := func(rate int) Phase { return Phase{TargetRate: rate, Verdict: "pass"} }
	fail := func(rate int) Phase { return Phase{TargetRate: rate, Verdict: "p99 120.0 ms > 100 ms"} }
	cases := []struct {
		name      string
		c         Curve
		saturated int // 0: none
		failure   int // 0: none
	}{
		{"stepped up", Curve{Steps: []Phase{pass(100), pass(150), fail(225)}, Saturation: 1}, 150, 225},
		{"the ladder ran out without a failure", Curve{Steps: []Phase{pass(100), pass(150)}, Saturation: 1}, 150, 0},
		{"the first step failed, before curves stepped down", Curve{Steps: []Phase{fail(225)}, Saturation: -1}, 0, 225},
		// After a step-down the last step by rate is the first one run;
		// the failure that bounds the saturation is the one just above it.
		{"stepped down", Curve{Steps: []Phase{pass(50), fail(75), fail(100), fail(150)}, Saturation: 0}, 50, 75},
		{"stepped down to the floor without a pass", Curve{Steps: []Phase{fail(5), fail(7), fail(13)}, Saturation: -1}, 0, 5},
		{"order does not matter", Curve{Steps: []Phase{fail(150), pass(50), fail(75)}, Saturation: 1}, 50, 75},
		{"a saturation out of range is none", Curve{Steps: []Phase{pass(50), fail(75)}, Saturation: 2}, 0, 75},
		{"no steps", Curve{Saturation: -1}, 0, 0},
	}
	for _, tc := range cases {
		if got := rateOf(tc.c.Saturated()); got != tc.saturated {
			t.Errorf("%s: Saturated at %d/s, want %d/s", tc.name, got, tc.saturated)
		}
		if got := rateOf(tc.c.FirstFailure()); got != tc.failure {
			t.Errorf("%s: FirstFailure at %d/s, want %d/s", tc.name, got, tc.failure)
		}
	}
}

func TestBoundDescribesWhatAStepMustMeet(t *testing.T) {
	got := Bound{MaxErrorRatio: 0.001, MaxP99MS: 100, MinAchieved: 0.97, QueueMustNotGrow: true}.String()
	want := "errors <= 0.1%, answered >= 97% of the offered rate, p99 <= 100 ms, write queue not growing"
	if got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
