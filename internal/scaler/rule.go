// Package scaler is the fleet's autoscaler: it reads load signals from
// Prometheus, decides how many API and consumer replicas each service
// needs with the Kubernetes Horizontal Pod Autoscaler's rule, and applies
// the decision with Docker Compose, draining what it removes.
//
// The rule (Decide, pure and tested on recorded series) is the HPA's:
//
//	desired = ceil(current × metric / target)
//
// for every signal of a service, the largest of them winning, with
//   - a tolerance band: a signal within ±Tolerance of its target asks for
//     no change, so that noise around the target does not move the fleet;
//   - scale-down to the band's lower edge, not to the target: a signal
//     below the band asks for ceil(current × metric / (target × (1 −
//     Tolerance))), the fewest replicas at which the per-replica value is
//     predicted to stay at or under the band, so that the size it lands on
//     has the whole band as headroom before it asks for more. This is where
//     the rule departs from the HPA's: on a closed loop (clients that send
//     as soon as they are answered) sharing the host's cores with the
//     fleet, the total load is not independent of the size (the fleet's
//     requests in flight were 55 at 8 API replicas and 71 at 6, summed),
//     and a scale-down aimed at the target landed above the band and
//     bounced back up (docs/autoscaling.md, "What it showed");
//   - min and max replicas per service, also enforced on a fleet that
//     someone scaled by hand;
//   - no stabilization upward: a load step is acted on at the next
//     interval;
//   - a stabilization window downward: the size never goes below the
//     highest recommendation of the last DownWindow, so the fleet shrinks
//     only after DownWindow of lower recommendations, and a load that
//     comes and goes faster than the window keeps the fleet at its peak
//     size instead of flapping (the direction changes at most once per
//     window);
//   - at most one change per Cooldown, which leaves new replicas the time
//     to start and to show in the signals before the next decision;
//   - on partial data (a signal without samples) the others may scale up
//     but never down (as the HPA does); without any data the size holds,
//     and the hold counts as a recommendation of the current size, so a
//     Prometheus outage does not shorten the stabilization window.
package scaler

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Policy holds one service's scaling limits and timings.
type Policy struct {
	Min, Max int
	// Tolerance is the band around each target, as a fraction (0.1: a
	// metric between 90 % and 110 % of its target asks for no change).
	Tolerance float64
	// DownWindow is how long recommendations must stay lower before the
	// service shrinks.
	DownWindow time.Duration
	// Cooldown is the least time between two changes of the service.
	Cooldown time.Duration
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	switch {
	case p.Min < 1:
		return fmt.Errorf("min replicas %d: must be at least 1", p.Min)
	case p.Min > p.Max:
		return fmt.Errorf("min replicas %d is above max replicas %d", p.Min, p.Max)
	case p.Tolerance < 0 || p.Tolerance >= 1:
		return fmt.Errorf("tolerance %g: must be in [0, 1)", p.Tolerance)
	case p.DownWindow < 0 || p.Cooldown < 0:
		return fmt.Errorf("windows must not be negative")
	}
	return nil
}

// SignalState says whether a signal has a value to act on.
type SignalState int

const (
	// SignalOK has a value.
	SignalOK SignalState = iota
	// SignalMissing had no samples in Prometheus (or its query failed).
	SignalMissing
	// SignalIdle does not apply now (the consumers' growth signal while
	// no message waits): it asks for nothing and is not missing data.
	SignalIdle
)

// Signal is one load measurement of a service, reduced to a per-replica
// value and the target for that value.
type Signal struct {
	Name   string
	Value  float64
	Target float64
	State  SignalState
	// Note explains a missing or idle signal in the decision log.
	Note string
}

// recommend is the HPA formula for one signal, aimed at the band's lower
// edge when it scales down (see the package comment); inBand reports that
// the signal is within the tolerance band, so asks for the current size.
func (s Signal) recommend(current int, tolerance float64) (rec int, inBand bool) {
	ratio := s.Value / s.Target
	if math.Abs(ratio-1) <= tolerance {
		return current, true
	}
	if ratio < 1 {
		ratio /= 1 - tolerance
	}
	// The epsilon keeps float error (3 × 0.1/0.1 = 3.0000000000000004)
	// from adding a replica; the cap keeps a wild ratio (a zero target) from
	// overflowing int: any max is far below it.
	return int(math.Min(math.Ceil(float64(current)*ratio-1e-9), maxRecommendation)), false
}

const maxRecommendation = 1 << 20

func (s Signal) String() string {
	switch s.State {
	case SignalMissing:
		return s.Name + "=no data" + parenthesize(s.Note)
	case SignalIdle:
		return s.Name + "=idle" + parenthesize(s.Note)
	}
	return fmt.Sprintf("%s=%.3g/%.3g", s.Name, s.Value, s.Target)
}

func parenthesize(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// Observation is what one interval saw of a service.
type Observation struct {
	At      time.Time
	Current int
	Signals []Signal
	// Unavailable is set when Prometheus could not be asked at all; every
	// signal is then missing.
	Unavailable string
}

// Reason is why a decision was taken; a bounded set, used as a metric
// label.
type Reason string

// The reasons of Decide. A change has reason metrics, below_min or
// above_max; the others are holds.
const (
	ReasonMetrics        Reason = "metrics"
	ReasonBelowMin       Reason = "below_min"
	ReasonAboveMax       Reason = "above_max"
	ReasonSteady         Reason = "steady"
	ReasonTolerance      Reason = "tolerance"
	ReasonAtMin          Reason = "at_min"
	ReasonAtMax          Reason = "at_max"
	ReasonStabilizing    Reason = "stabilizing"
	ReasonCooldown       Reason = "cooldown"
	ReasonPartialData    Reason = "partial_data"
	ReasonMissingData    Reason = "missing_data"
	ReasonPrometheusDown Reason = "prometheus_down"
)

// Direction of a decision: up, down or none.
type Direction string

// The directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
	None Direction = "none"
)

// Decision is the outcome of one interval for one service.
type Decision struct {
	At      time.Time
	Current int
	Desired int
	// Recommendation is what the signals alone ask for, before the
	// limits, the window and the cooldown.
	Recommendation int
	Reason         Reason
	Signals        []Signal
	// Detail is a human explanation of the reason.
	Detail string
}

// Direction is up, down or none.
func (d Decision) Direction() Direction {
	switch {
	case d.Desired > d.Current:
		return Up
	case d.Desired < d.Current:
		return Down
	}
	return None
}

// SignalSummary prints the signals as "name=value/target ...".
func (d Decision) SignalSummary() string {
	parts := make([]string, len(d.Signals))
	for i, s := range d.Signals {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

// History is what Decide remembers of a service between intervals. The
// zero value is a service never seen.
type History struct {
	// Since is the first observation: before Since+DownWindow the window
	// is not yet known, and the current size stands in for it.
	Since      time.Time
	LastChange time.Time
	recs       []timedRec
}

type timedRec struct {
	at  time.Time
	rec int
}

// highest returns the largest recommendation at or after cutoff, or 0.
func (h History) highest(cutoff time.Time) int {
	hi := 0
	for _, r := range h.recs {
		if !r.at.Before(cutoff) && r.rec > hi {
			hi = r.rec
		}
	}
	return hi
}

// record returns h with rec added and what is older than keep dropped; it
// never shares the slice of h, so that Decide stays pure.
func (h History) record(at time.Time, rec int, keep time.Duration) History {
	recs := make([]timedRec, 0, len(h.recs)+1)
	for _, r := range h.recs {
		if !r.at.Before(at.Add(-keep)) {
			recs = append(recs, r)
		}
	}
	h.recs = append(recs, timedRec{at: at, rec: rec})
	return h
}

// Decide applies the rule (see the package comment) to one observation of
// a service and returns the decision and the history to pass next time.
// It is a pure function of its arguments.
func Decide(p Policy, h History, o Observation) (Decision, History) {
	if h.Since.IsZero() {
		h.Since = o.At
	}
	d := Decision{At: o.At, Current: o.Current, Desired: o.Current, Signals: o.Signals}

	rec, status, detail := recommend(p, o)
	d.Recommendation = rec
	bounded := clamp(rec, p.Min, p.Max)
	h = h.record(o.At, bounded, p.DownWindow)

	desired := bounded
	if desired < o.Current {
		// Scale down only as far as the highest recommendation of the
		// window; while the window reaches back before the first
		// observation, the current size counts as part of it.
		hi := h.highest(o.At.Add(-p.DownWindow))
		if o.At.Sub(h.Since) < p.DownWindow {
			hi = max(hi, o.Current)
		}
		desired = min(o.Current, max(desired, hi))
	}
	if o.Current > p.Max {
		// Limits are settings, not load: no window for them.
		desired = p.Max
	}

	switch {
	case desired == o.Current:
		d.Reason, d.Detail = holdReason(p, o, rec, bounded, status, detail)
	case !h.LastChange.IsZero() && o.At.Sub(h.LastChange) < p.Cooldown:
		d.Reason = ReasonCooldown
		d.Detail = fmt.Sprintf("would go to %d; last change %s ago, cooldown %s", desired, o.At.Sub(h.LastChange), p.Cooldown)
	default:
		d.Desired = desired
		h.LastChange = o.At
		switch {
		case o.Current < p.Min:
			d.Reason, d.Detail = ReasonBelowMin, fmt.Sprintf("below the minimum of %d", p.Min)
		case o.Current > p.Max:
			d.Reason, d.Detail = ReasonAboveMax, fmt.Sprintf("above the maximum of %d", p.Max)
		default:
			d.Reason, d.Detail = ReasonMetrics, changeDetail(p, rec, bounded, desired)
		}
	}
	return d, h
}

// recStatus is how complete the signals were.
type recStatus int

const (
	statusComplete recStatus = iota
	statusPartial            // some signals missing
	statusMissing            // no signal had data
	statusInBand             // complete, and the largest recommendation is a signal within tolerance
)

// recommend combines the signals: the largest recommendation wins (each
// signal alone would otherwise starve the fleet of what the other
// measures); with a signal missing it may not go below the current size;
// with none it is the current size.
func recommend(p Policy, o Observation) (int, recStatus, string) {
	if o.Unavailable != "" {
		return o.Current, statusMissing, o.Unavailable
	}
	rec, ok, missing, inBand := 0, 0, 0, 0
	for _, s := range o.Signals {
		switch s.State {
		case SignalMissing:
			missing++
		case SignalOK:
			if math.IsNaN(s.Value) || math.IsNaN(s.Value/s.Target) {
				missing++ // 0/0: no meaning to act on
				continue
			}
			r, band := s.recommend(o.Current, p.Tolerance)
			rec = max(rec, r)
			ok++
			if band {
				inBand++
			}
		}
	}
	switch {
	case ok == 0 && missing > 0:
		return o.Current, statusMissing, "no signal has data"
	case missing > 0 && rec < o.Current:
		return o.Current, statusPartial, fmt.Sprintf("the signals with data ask for %d; not scaling down while a signal has no data", rec)
	case missing > 0:
		return rec, statusPartial, ""
	case inBand > 0 && rec == o.Current:
		return rec, statusInBand, ""
	}
	return rec, statusComplete, ""
}

func holdReason(p Policy, o Observation, rec, bounded int, status recStatus, detail string) (Reason, string) {
	switch {
	case status == statusMissing && o.Unavailable != "":
		return ReasonPrometheusDown, "holding the current size: " + detail
	case status == statusMissing:
		return ReasonMissingData, "holding the current size: " + detail
	case status == statusPartial && detail != "":
		return ReasonPartialData, detail
	case bounded < o.Current:
		return ReasonStabilizing, fmt.Sprintf("signals ask for %d%s; scaling down waits for %s of lower recommendations",
			rec, floorNote(rec, p.Min), p.DownWindow)
	case rec > p.Max:
		return ReasonAtMax, fmt.Sprintf("signals ask for %d; at the maximum of %d", rec, p.Max)
	case rec < p.Min:
		return ReasonAtMin, fmt.Sprintf("signals ask for %d; at the minimum of %d", rec, p.Min)
	case status == statusInBand:
		return ReasonTolerance, fmt.Sprintf("within ±%g%% of the target", p.Tolerance*100)
	}
	return ReasonSteady, ""
}

func changeDetail(p Policy, rec, bounded, desired int) string {
	switch {
	case rec > p.Max:
		return fmt.Sprintf("signals ask for %d, capped at the maximum of %d", rec, p.Max)
	case desired > bounded:
		return fmt.Sprintf("signals ask for %d; the highest recommendation of the last %s is %d", bounded, p.DownWindow, desired)
	case rec < p.Min:
		return fmt.Sprintf("signals ask for %d, raised to the minimum of %d", rec, p.Min)
	}
	return fmt.Sprintf("signals ask for %d", rec)
}

func floorNote(rec, lo int) string {
	if rec < lo {
		return fmt.Sprintf(" (the minimum is %d)", lo)
	}
	return ""
}

func clamp(n, lo, hi int) int { return min(max(n, lo), hi) }
