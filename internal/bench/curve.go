package bench

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"
)

// curveStart is where a curve starts, as a share of the operation's
// closed-loop rate: low enough that the first step passes on a healthy
// fleet, so the curve shows the knee rather than starting past it.
const curveStart = 0.2

// curveCap bounds a curve's rates at this multiple of the closed-loop
// rate: an open loop cannot be served faster than a closed loop of 64
// connections for long, and the steps beyond would only pile up.
const curveCap = 1.6

// curveFloor is the lowest rate a curve steps down to when its first step
// already fails: a step of a few requests per second still answers
// whether the fleet serves anything within the bound, and below it too
// few requests are left for a p99.
const curveFloor = 5

// curveStepsDown bounds the steps a curve takes below its first one, so a
// fleet that fails even the floor costs a bounded time.
const curveStepsDown = 6

// curves steps each operation up on an open loop until a step fails the
// curve bound (errors, p99, falling behind; for writes also the queue
// growing), starting from a fifth of the rate its closed-loop phase
// reached; when that first step already fails, it steps down instead
// until one passes (see Climb). An operation whose closed loop did not
// run is left out.
func (b *runner) curves(ctx context.Context) error {
	f := b.result.Fleet
	uncached := missKeyBase + b.runID + "/curve/"
	getMiss := func(ctx context.Context, seq uint64) Sample {
		a := b.api.Get(ctx, uncached+strconv.FormatUint(seq, 10)+"-"+strconv.FormatUint(mrand.Uint64(), 36))
		return Sample{Op: "GET", Err: a.Class(200, true), Cached: a.Cached}
	}
	type op struct {
		name   string
		label  string // of the requests an open loop could not send
		closed *Phase
		writes bool
		do     func(tag string, lag *lagSampler) Do
	}
	ops := []op{
		{"cached GET", "GET", f.CachedGet, false, func(string, *lagSampler) Do { return b.getCached(b.api) }},
		{"uncached GET", "GET", f.UncachedGet, false, func(string, *lagSampler) Do { return getMiss }},
		{"PUT", "PUT", writesMax(f.Writes), true, func(tag string, lag *lagSampler) Do { return b.put(b.api, tag, lag) }},
		{"mixed 90/10", "GET", f.Mixed, true, func(tag string, _ *lagSampler) Do {
			get, put := b.getCached(b.api), b.put(b.api, tag, nil)
			return func(ctx context.Context, seq uint64) Sample {
				if mrand.IntN(10) == 0 {
					return put(ctx, seq)
				}
				return get(ctx, seq)
			}
		}},
	}
	for _, o := range ops {
		if o.closed == nil || o.closed.PerSecond < 1 {
			continue
		}
		bound := Bound{MaxErrorRatio: 0.001, MaxP99MS: b.o.CurveP99MS, MinAchieved: 0.97, QueueMustNotGrow: o.writes && b.watch != nil}
		c := Curve{Op: o.name, Bound: bound.String(), P99MS: bound.MaxP99MS}
		l := Ladder{Start: int(o.closed.PerSecond * curveStart), Factor: b.o.CurveFactor, Steps: b.o.CurveSteps,
			Max: int(o.closed.PerSecond * curveCap), Floor: curveFloor, Down: curveStepsDown}
		b.log.Info("curve", "op", o.name, "rates", fmt.Sprint(l.Rates()), "rates_below", fmt.Sprint(l.Below()))
		steps, best, err := Climb(ctx, l, bound, func(ctx context.Context, rate int) (Phase, error) {
			if o.writes && b.watch != nil {
				// Each step starts with an empty queue, so a growing
				// backlog belongs to the step that made it.
				if _, err := b.watch.waitBelow(ctx, 100, 3*time.Minute); err != nil {
					return Phase{}, err
				}
			}
			var lag *lagSampler
			if o.name == "PUT" {
				lag = b.newLag()
			}
			tag := fmt.Sprintf("curve-%s-%d", b.runID, rate)
			ol := OpenLoop{Rate: rate, Duration: b.o.CurveStep, Workers: b.o.Workers, Op: o.label}
			p := b.measure(ctx, fmt.Sprintf("%s curve %d/s", o.name, rate), ol, o.do(tag, lag), lag, o.writes)
			return p, ctx.Err()
		})
		c.Steps, c.Saturation = steps, best
		b.result.Fleet.Curves = append(b.result.Fleet.Curves, c)
		if err != nil {
			return err
		}
	}
	if b.watch != nil {
		if _, err := b.watch.waitBelow(ctx, 100, 3*time.Minute); err != nil {
			b.note("after the curves: %v", err)
		}
	}
	return ctx.Err()
}

func writesMax(w *Writes) *Phase {
	if w == nil {
		return nil
	}
	return w.Max
}

// String describes the bound as a reader of the result needs it.
func (b Bound) String() string {
	s := fmt.Sprintf("errors <= %.1f%%, answered >= %.0f%% of the offered rate", b.MaxErrorRatio*100, b.MinAchieved*100)
	if b.MaxP99MS > 0 {
		s += fmt.Sprintf(", p99 <= %.0f ms", b.MaxP99MS)
	}
	if b.QueueMustNotGrow {
		s += ", write queue not growing"
	}
	return s
}
