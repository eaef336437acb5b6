package autoscale

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

var quickLimits = Limits{
	Interval: 5 * time.Second, Cooldown: 30 * time.Second, DownWindow: time.Minute, SignalWindow: 20 * time.Second,
	StepWindow: 30 * time.Second, APIMin: 3, ConsumerMin: 2, Tolerance: 0.1, BacklogTarget: 500,
}

// series gives a service's signals at t seconds of a run, with current
// replicas: a recorded load shape.
type series func(t float64, current int) []scaler.Signal

// took is how long a simulated change takes to carry out.
const took = 3.0

// simulate runs the scaler's own rule (scaler.Decide) over recorded
// series every interval, as the live scaler does, through the quick
// schedule's shape (the constants below: the load, its backlog phase, the
// pause) until end, and records the decisions and changes as Run does.
// A change takes took seconds to carry out, except that a consumer change
// decided during the pause waits for its end (heldFleet), and the
// scaler's loop with it: its next decision comes at the first tick after
// the change is done. Traffic: 100 requests in every second, all answered.
func simulate(end float64, api, consumer series) Record {
	lim := quickLimits
	r := Record{Limits: lim, StepAt: stepAt, BacklogAt: backlogAt, LoadEnd: loadEnd, End: end,
		Fault: Fault{PausedAt: pausedAt, ResumedAt: resumedAt, Consumers: 2, Bound: 4000, Peak: 4150, Reached: true}}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	type svc struct {
		name    string
		policy  scaler.Policy
		signals series
		current int
		history scaler.History
	}
	services := []*svc{
		{name: "api", policy: scaler.Policy{Min: lim.APIMin, Max: 8, Tolerance: lim.Tolerance, DownWindow: lim.DownWindow, Cooldown: lim.Cooldown}, signals: api, current: lim.APIMin},
		{name: "consumer", policy: scaler.Policy{Min: lim.ConsumerMin, Max: 6, Tolerance: lim.Tolerance, DownWindow: lim.DownWindow, Cooldown: lim.Cooldown}, signals: consumer, current: lim.ConsumerMin},
	}
	tick := lim.Interval.Seconds()
	for t := 0.0; t < end; t += tick {
		for _, s := range services {
			var d scaler.Decision
			d, s.history = scaler.Decide(s.policy, s.history, scaler.Observation{
				At: t0.Add(time.Duration(t * float64(time.Second))), Current: s.current, Signals: s.signals(t, s.current)})
			iv := interval(t, s.name, d)
			r.Intervals = append(r.Intervals, iv)
			if d.Desired == d.Current {
				continue
			}
			done := t + took
			if s.name == "consumer" && r.Fault.pausedDuring(t, t) {
				done = resumedAt + took
			}
			r.Changes = append(r.Changes, Change{Interval: iv, Done: done})
			s.current = d.Desired
			for t+tick < done {
				t += tick
			}
		}
	}
	for range int(end) {
		r.Seconds = append(r.Seconds, Second{Offered: 100, OK: 100})
	}
	return r
}

// The recorded shapes: the load runs from 30 s to 180 s, its last 30 s
// the backlog phase, with the consumers paused from 152 s to 178 s; the
// run ends at 300 s.
const stepAt, backlogAt, pausedAt, resumedAt, loadEnd, runEnd = 30.0, 150.0, 152.0, 178.0, 180.0, 300.0

// apiLoad: 60 requests in flight in all from delay after the step until
// the load ends (the signals' window lags the load), spread over the
// replicas; CPU stays low, as on a small machine.
func apiLoad(delay float64) series {
	return func(t float64, current int) []scaler.Signal {
		inFlight := 0.0
		if t >= stepAt+delay && t < loadEnd+5 {
			inFlight = 60 / float64(current)
		}
		return []scaler.Signal{
			{Name: "cpu", Value: 0.1, Target: 0.5},
			{Name: "in_flight", Value: inFlight, Target: 10},
		}
	}
}

// pausedBacklog: 50 messages in the queue, growing by rate a second while
// the consumers are paused; unpaused, they drain it at once (2,000 writes
// a second, against a few hundred sent through the API).
func pausedBacklog(rate float64) series {
	return func(t float64, current int) []scaler.Signal {
		backlog := 50.0
		if t >= pausedAt && t < resumedAt {
			backlog += rate * (t - pausedAt)
		}
		return []scaler.Signal{
			{Name: "backlog", Value: backlog / float64(current), Target: 500},
			{Name: "growth", Target: 1, State: scaler.SignalIdle},
		}
	}
}

// apiQuiet: an API that never needs more replicas.
func apiQuiet(float64, int) []scaler.Signal {
	return []scaler.Signal{{Name: "cpu", Value: 0.1, Target: 0.5}, {Name: "in_flight", Value: 2, Target: 10}}
}

func goodRun() Record {
	return simulate(runEnd, apiLoad(5), pausedBacklog(150))
}

// consumerUp is the index of the first consumer scale-up in r.Changes.
func consumerUp(t *testing.T, r Record) int {
	t.Helper()
	for i, c := range r.Changes {
		if c.Service == "consumer" && c.Up() {
			return i
		}
	}
	t.Fatal("no consumer scale-up")
	return -1
}

// consumerDown is the index of the last consumer scale-down in r.Changes.
func consumerDown(t *testing.T, r Record) int {
	t.Helper()
	for i := len(r.Changes) - 1; i >= 0; i-- {
		if c := r.Changes[i]; c.Service == "consumer" && !c.Up() {
			return i
		}
	}
	t.Fatal("no consumer scale-down")
	return -1
}

func checkNamed(t *testing.T, checks []Check, prefix string) Check {
	t.Helper()
	for _, c := range checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	t.Fatalf("no check %q in %v", prefix, checks)
	return Check{}
}

func TestAGoodRunPassesEveryCheck(t *testing.T) {
	r := goodRun()
	checks := Evaluate(r)
	for _, c := range checks {
		if !c.Pass {
			t.Errorf("%s failed: %s", c.Name, c.Detail)
		}
	}
	if !Passed(checks) {
		t.Error("Passed is false")
	}
	step := checkNamed(t, checks, "API scales up")
	if !strings.Contains(step.Detail, "3→6 decided 5.0 s after the step") {
		t.Errorf("step detail: %s", step.Detail)
	}
	down := checkNamed(t, checks, "api back")
	// The last recommendation above 3 is the interval at 160 s: the
	// scaler's loop took no decision from then until the consumers' change,
	// held for the pause, was done (181 s), and at 185 s the load was gone.
	// 65 s later the window is clear.
	if !strings.Contains(down.Detail, "6→3 decided 45.0 s after the load ended, 65.0 s after the last recommendation above 3") {
		t.Errorf("down detail: %s", down.Detail)
	}
	// The backlog shows at 160 s (1,250 messages, 625 per consumer): 2→3
	// at once, carried out when the pause ends; that is also the last
	// recommendation above 2, and 65 s later the window is clear.
	consumers := checkNamed(t, checks, "consumers scale up")
	for _, want := range []string{
		"over the target at t=160 s, 8.0 s into the pause", "consumers 2→3 decided 0.0 s later (bound 35 s)",
		"held until the unpause at t=178 s, done at t=181 s",
		"then 3→2 decided 45.0 s after the load ended, 65.0 s after the last recommendation above 2 (window 60 s)",
	} {
		if !strings.Contains(consumers.Detail, want) {
			t.Errorf("consumer detail %q does not say %q", consumers.Detail, want)
		}
	}
	if d := checkNamed(t, checks, "consumer changes direction"); !strings.Contains(d.Detail, "0 reversals in 1 changes") {
		t.Errorf("consumer direction detail: %s", d.Detail)
	}
}

func TestEachCheckCanFail(t *testing.T) {
	cases := []struct {
		name   string
		record func() Record
		check  string
		detail string
	}{
		{
			name: "the API reacts after the step window",
			record: func() Record {
				return simulate(runEnd, apiLoad(35), pausedBacklog(150))
			},
			check: "API scales up", detail: "decided 35.0 s after the step (bound 30 s)",
		},
		{
			name: "the backlog phase does not run",
			record: func() Record {
				r := goodRun()
				r.Fault = Fault{Err: "no running consumer container to pause"}
				return r
			},
			check: "consumers scale up", detail: "the backlog phase did not run: no consumer was paused: no running consumer container to pause",
		},
		{
			name: "the consumers could not be unpaused",
			record: func() Record {
				r := goodRun()
				r.Fault.Err = "unpausing the consumer containers: docker unpause: exit status 1"
				return r
			},
			check: "consumers scale up", detail: "the induced fault failed: unpausing",
		},
		{
			// 30 messages a second: 740 at the last interval of the pause,
			// 370 per consumer.
			name: "the pause makes no backlog above the target",
			record: func() Record {
				return simulate(runEnd, apiLoad(5), pausedBacklog(30))
			},
			check: "consumers scale up", detail: "made no backlog above the target (500 messages per consumer +10 %): the consumers' signals peaked at backlog=370",
		},
		{
			name: "the consumers never scale up",
			record: func() Record {
				r := goodRun()
				r.Changes = slices.DeleteFunc(r.Changes, func(c Change) bool { return c.Service == "consumer" })
				return r
			},
			check: "consumers scale up", detail: "but the consumers never scaled up",
		},
		{
			name: "the consumers scale up late",
			record: func() Record {
				r := goodRun()
				i := consumerUp(t, r)
				r.Changes[i].T += 40
				sortChanges(r.Changes)
				return r
			},
			check: "consumers scale up", detail: "consumers 2→3 decided 40.0 s later (bound 35 s)",
		},
		{
			name: "the consumers scale up on something else than the queue",
			record: func() Record {
				r := goodRun()
				i := consumerUp(t, r)
				r.Changes[i].Reason, r.Changes[i].Signals = "below_min", map[string]float64{"backlog": 100}
				return r
			},
			check: "consumers scale up", detail: "not on the queue's signals (reason below_min)",
		},
		{
			name: "the consumers' scale-up fails",
			record: func() Record {
				r := goodRun()
				r.Changes[consumerUp(t, r)].Err = "scaling consumer to 3: exit status 1"
				return r
			},
			check: "consumers scale up", detail: "the change FAILED: scaling consumer to 3",
		},
		{
			name: "the consumers shrink before the window has passed",
			record: func() Record {
				r := goodRun()
				i := consumerDown(t, r)
				r.Changes[i].T, r.Changes[i].Done = 200, 203
				sortChanges(r.Changes)
				return r
			},
			check: "consumers scale up", detail: "40.0 s after the last recommendation above 2 (window 60 s)",
		},
		{
			name: "the run ends before the consumers are back at their minimum",
			record: func() Record {
				return simulate(loadEnd+40, apiLoad(5), pausedBacklog(150))
			},
			check: "consumers scale up", detail: "then not back to 2 by the end",
		},
		{
			// Decided before the load ended, carried out after it: the API
			// was not at its minimum when the load ended.
			name: "an API scale-up under way when the load ends is never undone",
			record: func() Record {
				r := simulate(runEnd, apiQuiet, pausedBacklog(150))
				r.Changes = append(r.Changes, Change{Interval: Interval{T: loadEnd - 2, Service: "api", Current: 3, Desired: 4}, Done: loadEnd + 10})
				sortChanges(r.Changes)
				for i, iv := range r.Intervals {
					if iv.Service == "api" && iv.T > loadEnd-2 {
						r.Intervals[i].Current = 4
					}
				}
				return r
			},
			check: "api back", detail: "4 replicas when the load ended; not back to 3 by the end",
		},
		{
			name: "the API flaps under steady load",
			record: func() Record {
				r := goodRun()
				r.Changes = append(r.Changes,
					Change{Interval: Interval{T: 100, Service: "api", Current: 6, Desired: 4}, Done: 101},
					Change{Interval: Interval{T: 140, Service: "api", Current: 4, Desired: 6}, Done: 141})
				sortChanges(r.Changes)
				return r
			},
			check: "api changes direction", detail: "2 reversals in 3 changes",
		},
		{
			name: "the API shrinks before the window has passed",
			record: func() Record {
				r := goodRun()
				for i, c := range r.Changes {
					if c.Service == "api" && !c.Up() {
						r.Changes[i].T, r.Changes[i].Done = loadEnd+20, loadEnd+23
					}
				}
				return r
			},
			check: "api back", detail: "40.0 s after the last recommendation above 3 (window 60 s)",
		},
		{
			name: "the run ends before the API is back at its minimum",
			record: func() Record {
				return simulate(loadEnd+40, apiLoad(5), pausedBacklog(150))
			},
			check: "api back", detail: "not back to 3 by the end",
		},
		{
			name: "a change fails",
			record: func() Record {
				r := goodRun()
				r.Changes[0].Err = "compose up: exit status 1"
				return r
			},
			check: "every scale change", detail: "1 of 4 changes failed",
		},
		{
			name: "a request fails at a reload",
			record: func() Record {
				r := goodRun()
				at := r.Changes[0].Done + 1
				r.Failures = []Failure{{T: at, Op: "PUT", Kind: "transport eof"}}
				r.Seconds[int(at)].OK--
				r.Seconds[int(at)].Failed++
				return r
			},
			check: "no request failed", detail: "1 × transport eof; 1 of them within 5s of a scale change",
		},
		{
			name: "the fleet moves while idle",
			record: func() Record {
				r := goodRun()
				r.Changes = append([]Change{{Interval: Interval{T: 10, Service: "consumer", Current: 2, Desired: 3}, Done: 11}}, r.Changes...)
				return r
			},
			check: "no scale change while idle", detail: "1 changes in the 30 s before the step",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checks := Evaluate(tc.record())
			c := checkNamed(t, checks, tc.check)
			if c.Pass {
				t.Errorf("%s passed: %s", c.Name, c.Detail)
			}
			if !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("%s detail %q does not say %q", c.Name, c.Detail, tc.detail)
			}
			if Passed(checks) {
				t.Error("Passed is true")
			}
		})
	}
}

func sortChanges(cs []Change) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].T < cs[j-1].T; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

func TestTimelineFollowsTheDecisions(t *testing.T) {
	r := goodRun()
	points := Timeline(r, 1)
	if len(points) != int(runEnd) {
		t.Fatalf("%d points, want %d", len(points), int(runEnd))
	}
	at := func(s int) Point { return points[s] }
	// The API scale-up is decided at 35 s and carried out at 38 s.
	if p := at(36); p.APIReplicas != 3 || p.APIDecision != "" {
		t.Errorf("second 36: %+v", p)
	}
	if p := at(35); p.APIDecision != "metrics" || p.APIInFlight == nil || *p.APIInFlight != 20 {
		t.Errorf("second 35: decision %q in flight %v", p.APIDecision, p.APIInFlight)
	}
	if p := at(38); p.APIReplicas != 6 {
		t.Errorf("second 38: %d API replicas, want 6", p.APIReplicas)
	}
	// The backlog is shown for the whole queue: 1,250 messages at 160 s,
	// where the consumers' scale-up is decided; it is carried out at 181 s,
	// when the pause (152 s to 178 s) has ended.
	if p := at(160); p.Backlog == nil || *p.Backlog != 1250 || p.ConsumerDecision != "metrics" || !p.ConsumersPaused {
		t.Errorf("second 160: backlog %v decision %q paused %v", p.Backlog, p.ConsumerDecision, p.ConsumersPaused)
	}
	if p := at(180); p.ConsumerReplicas != 2 || p.ConsumersPaused {
		t.Errorf("second 180: %d consumers, paused %v", p.ConsumerReplicas, p.ConsumersPaused)
	}
	if p := at(181); p.ConsumerReplicas != 3 || p.Growth != nil {
		t.Errorf("second 181: %d consumers, growth %v", p.ConsumerReplicas, p.Growth)
	}
	for sec, want := range map[int]bool{151: false, 152: true, 177: true, 178: false} {
		if got := at(sec).ConsumersPaused; got != want {
			t.Errorf("second %d: paused %v, want %v", sec, got, want)
		}
	}
	if p := at(int(runEnd) - 1); p.APIReplicas != 3 || p.ConsumerReplicas != 2 || p.OK != 100 {
		t.Errorf("last second: %+v", p)
	}
}
