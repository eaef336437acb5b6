package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// Ladder is the schedule of an open-loop rate search: Start, then each
// step Factor times the previous one, at most Steps steps and never above
// Max (0: no cap). Below Start, for a search whose first step already
// fails, each step is the previous one divided by Factor, at most Down
// steps and never under Floor (0: 1).
type Ladder struct {
	Start  int
	Factor float64
	Steps  int
	Max    int
	Floor  int
	Down   int
}

// Rates lists the ladder's rates, ascending.
func (l Ladder) Rates() []int {
	var out []int
	r := max(l.Start, 1)
	for range l.Steps {
		if l.Max > 0 && r > l.Max {
			break
		}
		out = append(out, r)
		r = max(int(math.Round(float64(r)*l.Factor)), r+1)
	}
	return out
}

// Below lists the ladder's rates under Start, descending: each the
// previous one divided by Factor (and at least one lower), the last one
// Floor when the division would go under it, at most Down of them.
func (l Ladder) Below() []int {
	floor := max(l.Floor, 1)
	var out []int
	r := max(l.Start, 1)
	for range l.Down {
		next := max(min(int(math.Round(float64(r)/l.Factor)), r-1), floor)
		if next >= r {
			break
		}
		out = append(out, next)
		r = next
	}
	return out
}

// Bound is what an open-loop step must meet to pass.
type Bound struct {
	MaxErrorRatio float64 // share of requests that may fail
	MaxP99MS      float64 // 0: latency not judged
	// MinAchieved is the share of the target rate that must be answered
	// successfully per second.
	MinAchieved float64
	// QueueMustNotGrow fails a step whose write queue grew.
	QueueMustNotGrow bool
}

// Judge returns "pass" or why p fails b.
func (b Bound) Judge(p *Phase) string {
	switch {
	case p.ErrorRatio() > b.MaxErrorRatio:
		return fmt.Sprintf("errors %.2f%% > %.2f%% (%s)", p.ErrorRatio()*100, b.MaxErrorRatio*100, topErrors(p.ErrorKinds))
	case b.MaxP99MS > 0 && p.Latency.P99MS > b.MaxP99MS:
		return fmt.Sprintf("p99 %.1f ms > %.0f ms", p.Latency.P99MS, b.MaxP99MS)
	case p.TargetRate > 0 && p.PerSecond < b.MinAchieved*float64(p.TargetRate):
		return fmt.Sprintf("achieved %.0f/s < %.0f%% of %d/s", p.PerSecond, b.MinAchieved*100, p.TargetRate)
	case b.QueueMustNotGrow && p.Queue == nil:
		return "queue depth unknown"
	case b.QueueMustNotGrow && p.Queue.Growing:
		return fmt.Sprintf("queue grew by %.0f/s", p.Queue.GrowthPerSecond)
	}
	return "pass"
}

// StepFunc runs one open-loop step at rate.
type StepFunc func(ctx context.Context, rate int) (Phase, error)

// Ascend runs the steps of rates in order until one fails b, and returns
// every step run and the index of the last that passed before the first
// failure (-1: none did).
func Ascend(ctx context.Context, rates []int, b Bound, run StepFunc) ([]Phase, int, error) {
	var steps []Phase
	best := -1
	for _, rate := range rates {
		p, err := run(ctx, rate)
		if err != nil {
			return steps, best, err
		}
		p.Verdict = b.Judge(&p)
		steps = append(steps, p)
		if p.Verdict != "pass" {
			break
		}
		best = len(steps) - 1
	}
	return steps, best, nil
}

// Descend runs the steps of rates in order until one passes b, and
// returns every step run and the index of the one that passed (-1: none).
func Descend(ctx context.Context, rates []int, b Bound, run StepFunc) ([]Phase, int, error) {
	var steps []Phase
	for _, rate := range rates {
		p, err := run(ctx, rate)
		if err != nil {
			return steps, -1, err
		}
		p.Verdict = b.Judge(&p)
		steps = append(steps, p)
		if p.Verdict == "pass" {
			return steps, len(steps) - 1, nil
		}
	}
	return steps, -1, nil
}

// Climb runs l's rates up with Ascend. When the first of them already
// fails b, it steps down through l.Below with Descend until one passes,
// so that a start past the knee still finds the most the target serves
// within b. It returns every step run in ascending rate, whichever way
// it was run, and the index of the highest that passed (-1: none did).
func Climb(ctx context.Context, l Ladder, b Bound, run StepFunc) ([]Phase, int, error) {
	up, best, err := Ascend(ctx, l.Rates(), b, run)
	if err != nil || best >= 0 || len(up) == 0 {
		return up, best, err
	}
	// A step function that does not report a cancelled context would
	// otherwise go on stepping down.
	if err := ctx.Err(); err != nil {
		return up, -1, err
	}
	down, pass, err := Descend(ctx, l.Below(), b, run)
	slices.Reverse(down)
	if pass >= 0 {
		pass = len(down) - 1 - pass
	}
	return append(down, up...), pass, err
}

// DescendingRates lists from start down by factor (< 1), steps rates.
func DescendingRates(start int, factor float64, steps int) []int {
	var out []int
	r := float64(start)
	for range steps {
		if int(r) < 1 {
			break
		}
		out = append(out, int(r))
		r *= factor
	}
	return out
}

// DepthSample is the number of ready messages in the write queue at a
// moment.
type DepthSample struct {
	At    time.Time
	Ready int
}

// Trend summarises the samples taken in [from, to] of a phase run at
// rate per second: the queue grew when the least-squares slope exceeds
// 2 % of the rate (at least 20/s) and the backlog rose by more than 100
// messages over the window.
func Trend(samples []DepthSample, from, to time.Time, rate float64, source string) *QueueTrend {
	t := &QueueTrend{Source: source}
	var in []DepthSample
	for _, s := range samples {
		if !s.At.Before(from) && !s.At.After(to) {
			in = append(in, s)
		}
	}
	t.Samples = len(in)
	if len(in) == 0 {
		return t
	}
	t.Start, t.End = in[0].Ready, in[len(in)-1].Ready
	for _, s := range in {
		t.Max = max(t.Max, s.Ready)
	}
	t.GrowthPerSecond = round1(slope(in))
	t.Growing = t.GrowthPerSecond > max(0.02*rate, 20) && t.End-t.Start > 100
	return t
}

// slope is the least-squares slope of ready over time, per second.
func slope(s []DepthSample) float64 {
	if len(s) < 2 {
		return 0
	}
	t0 := s[0].At
	var sx, sy, sxx, sxy float64
	for _, p := range s {
		x := p.At.Sub(t0).Seconds()
		y := float64(p.Ready)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	n := float64(len(s))
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}
