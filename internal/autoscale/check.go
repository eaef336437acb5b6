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

// checkConsumersFollowBacklog: in the backlog phase (the consumers paused:
// the induced fault) the backlog per consumer goes over its target; the
// consumers scale up on the queue's signals (backlog or growth) within a
// cooldown and an interval of the first interval that saw them over
// target, the change is carried out, and they come back to their minimum
// no sooner than the stabilization window after the last recommendation
// above it. A phase that did not run or made no backlog fails: the
// property was not shown.
func (r Record) checkConsumersFollowBacklog() Check {
	lo := r.Limits.ConsumerMin
	c := Check{Name: fmt.Sprintf("consumers scale up with the queue's backlog and back to their minimum (%d)", lo)}
	f := r.Fault
	switch {
	case f.PausedAt == 0:
		c.Detail = "the backlog phase did not run: no consumer was paused"
		if f.Err != "" {
			c.Detail += ": " + f.Err
		}
		return c
	case f.Err != "":
		c.Detail = "the induced fault failed: " + f.Err
		return c
	}
	tol := 1 + r.Limits.Tolerance
	target := r.Limits.BacklogTarget
	backlogOver := func(iv Interval) bool { b, ok := iv.Signals["backlog"]; return ok && b > target*tol }
	onQueue := func(iv Interval) bool { g, ok := iv.Signals["growth"]; return backlogOver(iv) || ok && g > tol }
	first, showed := -1.0, false
	var seen Interval
	for _, iv := range r.Intervals {
		if iv.Service != "consumer" || iv.T < f.PausedAt {
			continue
		}
		showed = showed || backlogOver(iv)
		if first < 0 && onQueue(iv) {
			first, seen = iv.T, iv
		}
	}
	if !showed {
		c.Detail = fmt.Sprintf("the backlog phase made no backlog above the target (%.0f messages per consumer +%.0f %%): the consumers' signals peaked at %s; the test read at most %.0f messages (bound %.0f)",
			target, r.Limits.Tolerance*100, r.peaks("consumer", f.PausedAt, r.End), f.Peak, f.Bound)
		return c
	}
	var up Change
	found := false
	for _, ch := range r.changesOf("consumer", f.PausedAt, r.End+1) {
		if ch.Up() {
			up, found = ch, true
			break
		}
	}
	if !found {
		c.Detail = fmt.Sprintf("the queue's signals over the target at t=%.0f s, %.1f s into the pause (%s), but the consumers never scaled up",
			first, first-f.PausedAt, seen.Summary)
		return c
	}
	bound := secs(r.Limits.Cooldown + r.Limits.Interval)
	after := up.T - first
	upOK := onQueue(up.Interval) && after >= 0 && after <= bound && up.Err == ""
	c.Detail = fmt.Sprintf("the queue's signals over the target at t=%.0f s, %.1f s into the pause (%s); consumers %d→%d decided %.1f s later (bound %.0f s) on %s",
		first, first-f.PausedAt, seen.Summary, up.Current, up.Desired, after, bound, up.Summary)
	switch {
	case !onQueue(up.Interval):
		c.Detail += fmt.Sprintf(", not on the queue's signals (reason %s)", up.Reason)
	case up.Err != "":
		c.Detail += "; the change FAILED: " + up.Err
	case up.T < f.ResumedAt:
		c.Detail += fmt.Sprintf("; held until the unpause at t=%.0f s, done at t=%.0f s", f.ResumedAt, up.Done)
	default:
		c.Detail += fmt.Sprintf("; done at t=%.0f s", up.Done)
	}
	var later []Change
	for _, ch := range r.Changes {
		if ch.Service == "consumer" && ch.T > up.T {
			later = append(later, ch)
		}
	}
	downOK, down := r.returnToMin("consumer", lo, later)
	c.Pass = upOK && downOK
	c.Detail += "; then " + down
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

// checkBackToMin: after the load, the service returns to its minimum (see
// returnToMin).
func (r Record) checkBackToMin(service string, lo int) Check {
	c := Check{Name: fmt.Sprintf("%s back to its minimum (%d) after the stabilization window", service, lo)}
	atEnd := r.sizeAt(service, r.LoadEnd)
	after := r.changesOf(service, r.LoadEnd, r.End+1)
	if atEnd <= lo && len(after) == 0 {
		c.Pass = true
		c.Detail = fmt.Sprintf("at its minimum when the load ended and after it (%d replicas)", atEnd)
		return c
	}
	c.Pass, c.Detail = r.returnToMin(service, lo, after)
	if !c.Pass {
		c.Detail = fmt.Sprintf("%d replicas when the load ended; %s", atEnd, c.Detail)
	}
	return c
}

// returnToMin judges the changes of a service from some point on: the last
// of them brings it to its minimum lo, no sooner than the stabilization
// window after its last recommendation above lo (the window is honoured)
// and no later than the window plus a minute after the load ended (for
// the signals' window to empty, an interval, and the change itself).
func (r Record) returnToMin(service string, lo int, changes []Change) (bool, string) {
	bound := secs(r.Limits.DownWindow + time.Minute)
	for i, ch := range changes {
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
		pass := quiet >= window-0.001 && done <= bound && i == len(changes)-1
		detail := fmt.Sprintf("%d→%d decided %.1f s after the load ended, %.1f s after the last recommendation above %d (window %.0f s); done %.1f s after the load ended (bound %.0f s)",
			ch.Current, ch.Desired, ch.T-r.LoadEnd, quiet, lo, window, done, bound)
		if i != len(changes)-1 {
			detail += fmt.Sprintf("; then changed again%s", listChanges(changes[i+1:]))
		}
		return pass, detail
	}
	return false, fmt.Sprintf("not back to %d by the end, %.0f s after the load ended (bound %.0f s)%s",
		lo, r.End-r.LoadEnd, bound, listChanges(changes))
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

// sizeAt is the size the service had, or was being brought to, at t: that
// of the last change decided before t that did not fail, else the last
// size the scaler saw. A change under way counts: a service is not at its
// minimum while a scale-up decided before t is still being carried out.
func (r Record) sizeAt(service string, t float64) int {
	n, when := 0, -1.0
	for _, iv := range r.Intervals {
		if iv.Service == service && iv.T <= t && iv.T >= when {
			n, when = iv.Current, iv.T
		}
	}
	for _, ch := range r.Changes {
		if ch.Service == service && ch.Err == "" && ch.T <= t && ch.T >= when {
			n, when = ch.Desired, ch.T
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
