package autoscale

import (
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

// simulate runs the scaler's own rule (scaler.Decide) over recorded
// series every interval, as the live scaler does, and records the
// decisions and changes; each change takes took seconds to carry out.
// Traffic: 100 requests in every second, all answered.
func simulate(lim Limits, stepAt, loadEnd, end float64, api, consumer series, took float64) Record {
	r := Record{Limits: lim, StepAt: stepAt, LoadEnd: loadEnd, End: end}
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
	for t := 0.0; t < end; t += lim.Interval.Seconds() {
		for _, s := range services {
			var d scaler.Decision
			d, s.history = scaler.Decide(s.policy, s.history, scaler.Observation{
				At: t0.Add(time.Duration(t * float64(time.Second))), Current: s.current, Signals: s.signals(t, s.current)})
			iv := interval(t, s.name, d)
			r.Intervals = append(r.Intervals, iv)
			if d.Desired != d.Current {
				r.Changes = append(r.Changes, Change{Interval: iv, Done: t + took})
				s.current = d.Desired
			}
		}
	}
	for range int(end) {
		r.Seconds = append(r.Seconds, Second{Offered: 100, OK: 100})
	}
	return r
}

// The recorded shapes: the load runs from 30 s to 180 s; the run ends at
// 300 s.
const stepAt, loadEnd, runEnd = 30.0, 180.0, 300.0

// apiLoad: 60 requests in flight in all from 5 s after the step until the
// load ends (the signals' window lags the load), spread over the
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

// backlogBurst: 1,600 messages queued from 20 s to 40 s after the step,
// 50 otherwise.
func backlogBurst(queued float64) series {
	return func(t float64, current int) []scaler.Signal {
		backlog := 50.0
		if t >= stepAt+20 && t < stepAt+40 {
			backlog = queued
		}
		return []scaler.Signal{
			{Name: "backlog", Value: backlog / float64(current), Target: 500},
			{Name: "growth", Target: 1, State: scaler.SignalIdle},
		}
	}
}

func goodRun() Record {
	return simulate(quickLimits, stepAt, loadEnd, runEnd, apiLoad(5), backlogBurst(1600), 3)
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
	// The last recommendation above 3 is the interval at 180 s (the
	// signals' window still sees the load); 65 s later the window is clear.
	if !strings.Contains(down.Detail, "6→3 decided 65.0 s after the load ended, 65.0 s after the last recommendation above 3") {
		t.Errorf("down detail: %s", down.Detail)
	}
	// The consumers came back down during the load: one reversal, allowed.
	if d := checkNamed(t, checks, "consumer changes direction"); !strings.Contains(d.Detail, "1 reversals in 2 changes") {
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
				return simulate(quickLimits, stepAt, loadEnd, runEnd, apiLoad(35), backlogBurst(1600), 3)
			},
			check: "API scales up", detail: "decided 35.0 s after the step (bound 30 s)",
		},
		{
			name:   "the load makes no backlog",
			record: func() Record { return simulate(quickLimits, stepAt, loadEnd, runEnd, apiLoad(5), backlogBurst(900), 3) },
			check:  "consumers scale up", detail: "made no backlog above the target",
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
			check: "api back", detail: "20.0 s after the last recommendation above 3 (window 60 s)",
		},
		{
			name: "the run ends before the API is back at its minimum",
			record: func() Record {
				return simulate(quickLimits, stepAt, loadEnd, loadEnd+60, apiLoad(5), backlogBurst(1600), 3)
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
	// The backlog is shown for the whole queue: 1,600 messages at 50 s.
	if p := at(50); p.Backlog == nil || *p.Backlog != 1600 || p.ConsumerDecision != "metrics" {
		t.Errorf("second 50: backlog %v decision %q", p.Backlog, p.ConsumerDecision)
	}
	if p := at(55); p.ConsumerReplicas != 4 || p.Growth != nil {
		t.Errorf("second 55: %d consumers, growth %v", p.ConsumerReplicas, p.Growth)
	}
	if p := at(int(runEnd) - 1); p.APIReplicas != 3 || p.ConsumerReplicas != 2 || p.OK != 100 {
		t.Errorf("last second: %+v", p)
	}
}
