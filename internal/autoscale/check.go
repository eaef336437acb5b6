package autoscale

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Check is one property of the run, measured and compared with its bound.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// nearChange is how close to a scale change (from its decision to this
// long after it was carried out) a failed request is counted as "near"
// one in the failure check's detail.
const nearChange = 5 * time.Second

// Evaluate checks a run's record: each check compares a measurement with
// its bound and says both in its detail.
func Evaluate(r Record) []Check {
	return []Check{
		r.checkIdleHolds(),
		r.checkAPIStep(),
		r.checkConsumersFollowBacklog(),
		r.checkDirection("api"),
		r.checkDirection("consumer"),
		r.checkBackToMin("api", r.Limits.APIMin),
		r.checkBackToMin("consumer", r.Limits.ConsumerMin),
		r.checkChangesSucceeded(),
		r.checkNoFailures(),
	}
}

// Passed reports whether every check passed.
func Passed(checks []Check) bool {
	return len(checks) > 0 && !slices.ContainsFunc(checks, func(c Check) bool { return !c.Pass })
}

func secs(d time.Duration) float64 { return d.Seconds() }

// changesOf returns the changes of service decided in [from, to).
func (r Record) changesOf(service string, from, to float64) []Change {
	var out []Change
	for _, c := range r.Changes {
		if c.Service == service && c.T >= from && c.T < to {
			out = append(out, c)
		}
	}
	return out
}

// checkIdleHolds: light traffic must not move the fleet.
func (r Record) checkIdleHolds() Check {
	c := Check{Name: "no scale change while idle"}
	changes := append(r.changesOf("api", 0, r.StepAt), r.changesOf("consumer", 0, r.StepAt)...)
	c.Pass = len(changes) == 0
	c.Detail = fmt.Sprintf("%d changes in the %.0f s before the step (bound 0)%s", len(changes), r.StepAt, listChanges(changes))
	return c
}

// checkAPIStep: the first API scale-up after the step is decided within
// the step window and carried out.
func (r Record) checkAPIStep() Check {
	c := Check{Name: fmt.Sprintf("API scales up within %.0f s of the load step", secs(r.Limits.StepWindow))}
	for _, ch := range r.changesOf("api", r.StepAt, r.LoadEnd) {
		if !ch.Up() {
			continue
		}
		after := ch.T - r.StepAt
		c.Pass = after <= secs(r.Limits.StepWindow) && ch.Err == ""
		c.Detail = fmt.Sprintf("%d→%d decided %.1f s after the step (bound %.0f s) on %s; %s",
			ch.Current, ch.Desired, after, secs(r.Limits.StepWindow), ch.Summary, outcome(ch, r.StepAt))
		return c
	}
	c.Detail = fmt.Sprintf("no API scale-up during the load; the API's signals peaked at %s", r.peaks("api", r.StepAt, r.LoadEnd))
	return c
}

// checkConsumersFollowBacklog: once the backlog (or its growth) per
// consumer is above its target, the consumers scale up within a cooldown
// and an interval. A load that makes no backlog fails: the property was
// not shown.
func (r Record) checkConsumersFollowBacklog() Check {
	c := Check{Name: "consumers scale up with the queue's backlog"}
	tol := 1 + r.Limits.Tolerance
	first := -1.0
	var seen Interval
	for _, iv := range r.Intervals {
		if iv.Service != "consumer" || iv.T < r.StepAt || iv.T >= r.LoadEnd {
			continue
		}
		if b, ok := iv.Signals["backlog"]; ok && b > r.Limits.BacklogTarget*tol {
			first, seen = iv.T, iv
			break
		}
		if g, ok := iv.Signals["growth"]; ok && g > tol {
			first, seen = iv.T, iv
			break
		}
	}
	if first < 0 {
		c.Detail = fmt.Sprintf("the load made no backlog above the target (%.0f messages per consumer ±%.0f %%): the consumers' signals peaked at %s",
			r.Limits.BacklogTarget, r.Limits.Tolerance*100, r.peaks("consumer", r.StepAt, r.LoadEnd))
		return c
	}
	bound := secs(r.Limits.Cooldown + r.Limits.Interval)
	for _, ch := range r.changesOf("consumer", r.StepAt, r.End) {
		if !ch.Up() {
			continue
		}
		after := ch.T - first
		c.Pass = after >= 0 && after <= bound && ch.Err == ""
		c.Detail = fmt.Sprintf("backlog above the target %.1f s after the step (%s); consumers %d→%d %.1f s later (bound %.0f s) on %s; %s; peaks %s",
			first-r.StepAt, seen.Summary, ch.Current, ch.Desired, after, bound, ch.Summary, outcome(ch, r.StepAt), r.peaks("consumer", r.StepAt, r.LoadEnd))
		return c
	}
	c.Detail = fmt.Sprintf("backlog above the target %.1f s after the step (%s), but the consumers never scaled up", first-r.StepAt, seen.Summary)
	return c
}

// checkDirection: under the steady load (from the step to its end) a
// service changes direction (up then down, or down then up) at most once.
func (r Record) checkDirection(service string) Check {
	c := Check{Name: service + " changes direction at most once under steady load"}
	changes := r.changesOf(service, r.StepAt, r.LoadEnd)
	reversals := 0
	for i := 1; i < len(changes); i++ {
		if changes[i].Up() != changes[i-1].Up() {
			reversals++
		}
	}
	c.Pass = reversals <= 1
	c.Detail = fmt.Sprintf("%d reversals in %d changes over %.0f s of load (bound 1)%s",
		reversals, len(changes), r.LoadEnd-r.StepAt, listChanges(changes))
	return c
}

// checkBackToMin: after the load, the service returns to its minimum, no
// sooner than the stabilization window after its last recommendation
// above the minimum (the window is honoured) and no later than the window
// plus a minute after the load ended (for the signals' window to empty,
// an interval, and the change itself).
func (r Record) checkBackToMin(service string, lo int) Check {
	c := Check{Name: fmt.Sprintf("%s back to its minimum (%d) after the stabilization window", service, lo)}
	atEnd := r.replicasAt(service, r.LoadEnd)
	after := r.changesOf(service, r.LoadEnd, r.End+1)
	if atEnd <= lo && len(after) == 0 {
		c.Pass = true
		c.Detail = fmt.Sprintf("at its minimum when the load ended and after it (%d replicas)", atEnd)
		return c
	}
	bound := secs(r.Limits.DownWindow + time.Minute)
	for i, ch := range after {
		if ch.Desired != lo || ch.Err != "" {
			continue
		}
		lastHigh := r.LoadEnd
		for _, iv := range r.Intervals {
			if iv.Service == service && iv.T < ch.T && iv.Recommendation > lo {
				lastHigh = iv.T
			}
		}
		quiet := ch.T - lastHigh
		done := ch.Done - r.LoadEnd
		window := secs(r.Limits.DownWindow)
		// The scaler's window keeps a recommendation made exactly
		// DownWindow ago; a millisecond of slack absorbs float rounding.
		c.Pass = quiet >= window-0.001 && done <= bound && i == len(after)-1
		c.Detail = fmt.Sprintf("%d→%d decided %.1f s after the load ended, %.1f s after the last recommendation above %d (window %.0f s); done %.1f s after the load ended (bound %.0f s)",
			ch.Current, ch.Desired, ch.T-r.LoadEnd, quiet, lo, window, done, bound)
		if i != len(after)-1 {
			c.Detail += fmt.Sprintf("; then changed again%s", listChanges(after[i+1:]))
		}
		return c
	}
	c.Detail = fmt.Sprintf("%d replicas when the load ended; not back to %d by the end, %.0f s later (bound %.0f s)%s",
		atEnd, lo, r.End-r.LoadEnd, bound, listChanges(after))
	return c
}

// checkChangesSucceeded: every change the scaler decided was carried out.
func (r Record) checkChangesSucceeded() Check {
	c := Check{Name: "every scale change was carried out"}
	var failed []string
	for _, ch := range r.Changes {
		if ch.Err != "" {
			failed = append(failed, fmt.Sprintf("%s %d→%d at t=%.0f s: %s", ch.Service, ch.Current, ch.Desired, ch.T, ch.Err))
		}
	}
	c.Pass = len(failed) == 0
	c.Detail = fmt.Sprintf("%d of %d changes failed (bound 0)", len(failed), len(r.Changes))
	if len(failed) > 0 {
		c.Detail += ": " + strings.Join(failed, "; ")
	}
	return c
}

// checkNoFailures: not one request failed, whatever the cause; the detail
// says how many of those that did were near a scale change.
func (r Record) checkNoFailures() Check {
	c := Check{Name: "no request failed"}
	sent := 0
	for _, s := range r.Seconds {
		sent += s.Offered
	}
	kinds := map[string]int{}
	near := 0
	for _, f := range r.Failures {
		kinds[f.Kind]++
		if r.nearChange(f.T) {
			near++
		}
	}
	c.Pass = len(r.Failures) == 0 && sent > 0
	c.Detail = fmt.Sprintf("%d of %d requests failed (bound 0) through %d scale changes", len(r.Failures), sent, len(r.Changes))
	if len(r.Failures) > 0 {
		c.Detail += fmt.Sprintf(": %s; %d of them within %v of a scale change", kindsText(kinds), near, nearChange)
	}
	return c
}

func (r Record) nearChange(t float64) bool {
	for _, ch := range r.Changes {
		if t >= ch.T-1 && t <= ch.Done+secs(nearChange) {
			return true
		}
	}
	return false
}

// replicasAt is the service's size at t: the last change carried out
// before t, else the last size the scaler saw.
func (r Record) replicasAt(service string, t float64) int {
	n, when := 0, -1.0
	for _, iv := range r.Intervals {
		if iv.Service == service && iv.T <= t && iv.T >= when {
			n, when = iv.Current, iv.T
		}
	}
	for _, ch := range r.Changes {
		if ch.Service == service && ch.Err == "" && ch.Done <= t && ch.Done >= when {
			n, when = ch.Desired, ch.Done
		}
	}
	return n
}

// peaks prints the highest value of each of a service's signals in
// [from, to).
func (r Record) peaks(service string, from, to float64) string {
	hi := map[string]float64{}
	for _, iv := range r.Intervals {
		if iv.Service != service || iv.T < from || iv.T >= to {
			continue
		}
		for name, v := range iv.Signals {
			if cur, ok := hi[name]; !ok || v > cur {
				hi[name] = v
			}
		}
	}
	if len(hi) == 0 {
		return "no data"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(hi)) {
		parts = append(parts, fmt.Sprintf("%s=%.3g", name, hi[name]))
	}
	return strings.Join(parts, " ")
}

func outcome(ch Change, zero float64) string {
	if ch.Err != "" {
		return "the change FAILED: " + ch.Err
	}
	return fmt.Sprintf("carried out %.1f s after the step", ch.Done-zero)
}

// listChanges prints changes with their times (t, seconds from the start
// of the run, as the timeline counts them).
func listChanges(changes []Change) string {
	if len(changes) == 0 {
		return ""
	}
	parts := make([]string, len(changes))
	for i, ch := range changes {
		parts[i] = fmt.Sprintf("%s %d→%d at t=%.0f s", ch.Service, ch.Current, ch.Desired, ch.T)
	}
	return ": " + strings.Join(parts, ", ")
}

func kindsText(kinds map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		parts = append(parts, fmt.Sprintf("%d × %s", kinds[k], k))
	}
	return strings.Join(parts, ", ")
}
