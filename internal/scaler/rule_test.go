package scaler

import (
	"math"
	"testing"
	"time"
)

// The series below are what Prometheus answers every interval for the API:
// the service's total CPU in cores and its total requests in flight, which
// the scaler spreads over the replicas that run at that moment (so adding
// replicas lowers the per-replica value, as it does in the fleet).

const interval = 5 * time.Second

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

var nan = math.NaN()

// apiTick is one interval of a recorded API series; NaN means no samples.
type apiTick struct {
	cpu, inFlight float64
	down          bool // Prometheus unreachable
}

var (
	idle = apiTick{cpu: 0.15, inFlight: 0.3}
	busy = apiTick{cpu: 3.0, inFlight: 6} // 6 replicas' worth at 0.5 core each
	gap  = apiTick{cpu: nan, inFlight: nan}
)

func repeat(n int, tk apiTick) []apiTick {
	out := make([]apiTick, n)
	for i := range out {
		out[i] = tk
	}
	return out
}

func series(parts ...[]apiTick) []apiTick {
	var out []apiTick
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ramp is how rate(...[20s]) sees a step from a to b: four intervals of
// linear change.
func ramp(a, b apiTick) []apiTick {
	out := make([]apiTick, 4)
	for k := range out {
		f := float64(k+1) / 4
		out[k] = apiTick{cpu: a.cpu + (b.cpu-a.cpu)*f, inFlight: a.inFlight + (b.inFlight-a.inFlight)*f}
	}
	return out
}

func perReplica(name string, total, target float64, current int) Signal {
	if math.IsNaN(total) {
		return Signal{Name: name, Target: target, State: SignalMissing}
	}
	return Signal{Name: name, Value: total / float64(current), Target: target}
}

var apiPolicy = Policy{Min: 3, Max: 8, Tolerance: 0.1, DownWindow: 5 * time.Minute, Cooldown: 30 * time.Second}

// replay feeds the series to Decide one interval at a time, starting at
// start replicas, and applies every decision as the scaler would.
func replay(p Policy, start int, ticks []apiTick) []Decision {
	var h History
	current := start
	out := make([]Decision, 0, len(ticks))
	for i, tk := range ticks {
		o := Observation{At: t0.Add(time.Duration(i) * interval), Current: current}
		if tk.down {
			o.Unavailable = "prometheus: connection refused"
		} else {
			o.Signals = []Signal{
				perReplica("cpu", tk.cpu, 0.5, current),
				perReplica("in_flight", tk.inFlight, 10, current),
			}
		}
		var d Decision
		d, h = Decide(p, h, o)
		out = append(out, d)
		current = d.Desired
	}
	return out
}

type change struct {
	tick     int
	from, to int
	reason   Reason
}

func changes(ds []Decision) []change {
	var out []change
	for i, d := range ds {
		if d.Desired != d.Current {
			out = append(out, change{i, d.Current, d.Desired, d.Reason})
		}
	}
	return out
}

// directionChanges returns the times at which the scaling direction
// reversed.
func directionChanges(ds []Decision) []time.Time {
	var out []time.Time
	last := None
	for _, d := range ds {
		dir := d.Direction()
		if dir == None {
			continue
		}
		if last != None && dir != last {
			out = append(out, d.At)
		}
		last = dir
	}
	return out
}

func TestDecideOnRecordedSeries(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		start  int
		ticks  []apiTick
		want   []change
		// holds are reasons expected at some intervals (index: reason).
		holds map[int]Reason
	}{
		{
			// 3 replicas idle for two minutes, then the load of six
			// replicas arrives (rate() sees it ramp over 20 s). Up at the
			// third interval of the ramp, 15 s after the step; then once
			// more when the cooldown allows.
			name: "step up", policy: apiPolicy, start: 3,
			ticks: series(repeat(24, idle), ramp(idle, busy), repeat(60, busy)),
			want:  []change{{26, 3, 5, ReasonMetrics}, {32, 5, 6, ReasonMetrics}},
			holds: map[int]Reason{0: ReasonAtMin, 25: ReasonTolerance, 27: ReasonCooldown, 31: ReasonCooldown, 33: ReasonTolerance, 80: ReasonTolerance},
		},
		{
			// The load goes at t=120 s; the last busy recommendation (6,
			// at 115 s) leaves the 5-minute window at 420 s (tick 84).
			name: "step down only after the window", policy: apiPolicy, start: 6,
			ticks: series(repeat(24, busy), repeat(120, idle)),
			want:  []change{{84, 6, 3, ReasonMetrics}},
			holds: map[int]Reason{23: ReasonTolerance, 24: ReasonStabilizing, 83: ReasonStabilizing, 85: ReasonAtMin},
		},
		{
			// Load on for a minute, off for a minute, for 20 minutes:
			// scale up once and stay at the peak, never flap.
			name: "oscillating load", policy: apiPolicy, start: 3,
			ticks: series(repeat(12, busy), repeat(12, idle), repeat(12, busy), repeat(12, idle),
				repeat(12, busy), repeat(12, idle), repeat(12, busy), repeat(12, idle),
				repeat(12, busy), repeat(12, idle), repeat(12, busy), repeat(12, idle),
				repeat(12, busy), repeat(12, idle), repeat(12, busy), repeat(12, idle),
				repeat(12, busy), repeat(12, idle), repeat(12, busy), repeat(12, idle)),
			want:  []change{{0, 3, 6, ReasonMetrics}},
			holds: map[int]Reason{12: ReasonStabilizing, 24: ReasonTolerance, 239: ReasonStabilizing},
		},
		{
			// Two minutes without data hold the size, and the holds count
			// as recommendations of it: the window restarts at the gap's
			// last interval (175 s), so the first scale-down is at 480 s,
			// not at 360 s (five minutes after the last busy sample).
			name: "missing data holds and says so", policy: apiPolicy, start: 6,
			ticks: series(repeat(12, busy), repeat(24, gap), repeat(120, idle)),
			want:  []change{{96, 6, 3, ReasonMetrics}},
			holds: map[int]Reason{12: ReasonMissingData, 35: ReasonMissingData, 36: ReasonStabilizing, 95: ReasonStabilizing},
		},
		{
			name: "Prometheus unreachable holds and says so", policy: apiPolicy, start: 4,
			ticks: series(repeat(3, apiTick{down: true})),
			holds: map[int]Reason{0: ReasonPrometheusDown, 2: ReasonPrometheusDown},
		},
		{
			// CPU is idle but in-flight has no data: the HPA rule does not
			// scale down on partial data, however long it lasts.
			name: "partial data never scales down", policy: apiPolicy, start: 6,
			ticks: series(repeat(120, apiTick{cpu: 0.15, inFlight: nan})),
			holds: map[int]Reason{0: ReasonPartialData, 119: ReasonPartialData},
		},
		{
			name: "partial data may scale up", policy: apiPolicy, start: 3,
			ticks: series(repeat(3, apiTick{cpu: 3.0, inFlight: nan})),
			want:  []change{{0, 3, 6, ReasonMetrics}},
		},
		{
			// 0.54 core per replica is 108 % of the 0.5 target: inside the
			// band, although ceil(3 × 1.08) would be 4. 0.56 (112 %) is
			// outside it.
			name: "tolerance band upward", policy: apiPolicy, start: 3,
			ticks: series(repeat(24, apiTick{cpu: 3 * 0.54, inFlight: 3}), repeat(2, apiTick{cpu: 3 * 0.56, inFlight: 3})),
			want:  []change{{24, 3, 4, ReasonMetrics}},
			holds: map[int]Reason{0: ReasonTolerance, 23: ReasonTolerance},
		},
		{
			// 92 % holds for ten minutes: inside the band. 80 % holds too:
			// on 4 replicas it would be 100 %, with no headroom left
			// before the band's upper edge. 70 % scales down to 4 (87.5 %
			// there) once the window has seen nothing higher.
			name: "tolerance band downward", policy: apiPolicy, start: 5,
			ticks: series(repeat(120, apiTick{cpu: 5 * 0.46, inFlight: 5}), repeat(120, apiTick{cpu: 5 * 0.40, inFlight: 5}),
				repeat(61, apiTick{cpu: 5 * 0.35, inFlight: 5})),
			want: []change{{300, 5, 4, ReasonMetrics}},
			holds: map[int]Reason{0: ReasonTolerance, 119: ReasonTolerance, 120: ReasonSteady, 239: ReasonSteady,
				240: ReasonStabilizing, 299: ReasonStabilizing},
		},
		{
			name: "max caps a huge load", policy: apiPolicy, start: 3,
			ticks: series(repeat(10, apiTick{cpu: 20, inFlight: 200})),
			want:  []change{{0, 3, 8, ReasonMetrics}},
			holds: map[int]Reason{1: ReasonAtMax, 9: ReasonAtMax},
		},
		{
			name: "never below min when idle", policy: apiPolicy, start: 3,
			ticks: series(repeat(120, apiTick{cpu: 0, inFlight: 0})),
			holds: map[int]Reason{0: ReasonAtMin, 119: ReasonAtMin},
		},
		{
			// Someone scaled to 1 by hand: back to the minimum at once,
			// with or without data.
			name: "below min is corrected at once", policy: apiPolicy, start: 1,
			ticks: series(repeat(2, gap)),
			want:  []change{{0, 1, 3, ReasonBelowMin}},
			holds: map[int]Reason{1: ReasonMissingData},
		},
		{
			name: "above max is corrected at once", policy: apiPolicy, start: 10,
			ticks: series(repeat(2, apiTick{cpu: 5, inFlight: 10})),
			want:  []change{{0, 10, 8, ReasonAboveMax}},
		},
		{
			// 3 → 5 at 20 s; the load grows again at 30 s, but the next
			// change waits for the 30 s cooldown (50 s).
			name: "one change per cooldown", policy: apiPolicy, start: 3,
			ticks: series(repeat(4, apiTick{cpu: 1.5, inFlight: 3}), repeat(2, apiTick{cpu: 2.4, inFlight: 3}),
				repeat(10, apiTick{cpu: 4.0, inFlight: 3})),
			want:  []change{{4, 3, 5, ReasonMetrics}, {10, 5, 8, ReasonMetrics}},
			holds: map[int]Reason{5: ReasonTolerance, 6: ReasonCooldown, 9: ReasonCooldown, 11: ReasonTolerance},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := replay(tt.policy, tt.start, tt.ticks)
			got := changes(ds)
			if len(got) != len(tt.want) {
				t.Fatalf("changes = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("change %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			for i, want := range tt.holds {
				if d := ds[i]; d.Reason != want || d.Desired != d.Current {
					t.Errorf("tick %d: %d → %d reason %s (%s), want a hold with reason %s", i, d.Current, d.Desired, d.Reason, d.Detail, want)
				}
			}
		})
	}
}

// The criterion: a load step scales up within 30 s.
func TestStepUpWithin30Seconds(t *testing.T) {
	ticks := series(repeat(24, idle), ramp(idle, busy), repeat(12, busy))
	stepAt := t0.Add(23*interval + time.Nanosecond) // after the last idle sample
	for _, d := range replay(apiPolicy, 3, ticks) {
		if d.Direction() == Up {
			if took := d.At.Sub(stepAt); took > 30*time.Second {
				t.Fatalf("first scale-up %s after the step, want within 30s", took)
			}
			return
		}
	}
	t.Fatal("never scaled up")
}

// The criterion: over ten minutes of steady (noisy) load, the
// direction changes at most once.
func TestSteadyNoisyLoadChangesDirectionAtMostOnce(t *testing.T) {
	for _, amplitude := range []float64{0.1, 0.25, 0.4} {
		seed := uint32(1)
		noise := func() float64 { // deterministic, in [-1, 1)
			seed = seed*1664525 + 1013904223
			return float64(seed>>8)/float64(1<<23) - 1
		}
		ticks := make([]apiTick, 120)
		for i := range ticks {
			ticks[i] = apiTick{cpu: 2.0 * (1 + amplitude*noise()), inFlight: 8}
		}
		ds := replay(apiPolicy, 4, ticks)
		if rev := directionChanges(ds); len(rev) > 1 {
			t.Errorf("amplitude %g: direction changed %d times (%v), changes %+v", amplitude, len(rev), rev, changes(ds))
		}
	}
}

// The series of the full autoscaling run in docs/report.md: 192 clients
// sending back to back through a fleet that shares two cores, so that the
// requests in flight, summed over the API replicas, depend on how many
// there are (about 55 at 8 replicas and 71 at 6: fewer replicas, longer
// waits on the shared cores), with ±5 % noise. A scale-down aimed at the
// target (8 → 6: 55/10) landed above the band (71/6 = 11.8 per replica)
// and bounced back to 8; aimed at the band's lower edge it stops at 7
// (63/7 = 9.0 per replica) and stays.
func TestClosedLoopDoesNotBounce(t *testing.T) {
	seed := uint32(7)
	noise := func() float64 { // deterministic, in [-1, 1)
		seed = seed*1664525 + 1013904223
		return float64(seed>>8)/float64(1<<23) - 1
	}
	inFlight := func(replicas int) float64 { return float64(119-8*replicas) * (1 + 0.05*noise()) }
	var h History
	current := 3
	var ds []Decision
	for i := range 240 { // 20 minutes of steady load
		o := Observation{At: t0.Add(time.Duration(i) * interval), Current: current, Signals: []Signal{
			perReplica("cpu", 0.5, 0.5, current), // 0.06 core per replica at 8: the cores, not the replicas, are busy
			perReplica("in_flight", inFlight(current), 10, current),
		}}
		var d Decision
		d, h = Decide(apiPolicy, h, o)
		ds = append(ds, d)
		current = d.Desired
	}
	if rev := directionChanges(ds); len(rev) > 1 {
		t.Errorf("direction changed %d times (%v): changes %+v", len(rev), rev, changes(ds))
	}
	if got := changes(ds); len(got) == 0 || got[0].to != 8 || current != 7 {
		t.Errorf("changes %+v, ending at %d: want up to 8, then down to 7 and no further", got, current)
	}
}

// Whatever the load, two reversals are never closer than the window.
func TestOscillationReversesAtMostOncePerWindow(t *testing.T) {
	for _, half := range []int{1, 6, 12, 30, 60, 90} { // half-periods in intervals
		var ticks []apiTick
		for len(ticks) < 480 {
			ticks = append(ticks, repeat(half, busy)...)
			ticks = append(ticks, repeat(half, idle)...)
		}
		ds := replay(apiPolicy, 3, ticks)
		rev := directionChanges(ds)
		// A reversal down → up may follow a scale-down at once (load
		// came back); up → down never within the window.
		for i := 1; i < len(rev); i++ {
			if i >= 2 && rev[i].Sub(rev[i-2]) < apiPolicy.DownWindow {
				t.Errorf("half-period %d: reversals at %v and %v within one window", half, rev[i-2], rev[i])
			}
		}
		downs := 0
		for _, d := range ds {
			if d.Direction() == Down {
				downs++
			}
		}
		if half*int(interval) < int(apiPolicy.DownWindow) && downs > 0 {
			t.Errorf("half-period %s shorter than the window: scaled down %d times", time.Duration(half)*interval, downs)
		}
	}
}

// Consumers: the backlog per replica against its target, and the backlog's
// growth as arrivals over completions (target 1: no growth).
func TestDecideConsumers(t *testing.T) {
	p := Policy{Min: 2, Max: 6, Tolerance: 0.1, DownWindow: 5 * time.Minute, Cooldown: 30 * time.Second}
	backlog := func(total float64, current int) Signal { return perReplica("backlog", total, 500, current) }
	tests := []struct {
		name    string
		current int
		signals []Signal
		desired int
		reason  Reason
	}{
		{"empty queue", 2, []Signal{backlog(0, 2), {Name: "growth", State: SignalIdle}}, 2, ReasonAtMin},
		{"backlog over target", 2, []Signal{backlog(2500, 2), {Name: "growth", State: SignalIdle}}, 5, ReasonMetrics},
		{"backlog far over target", 2, []Signal{backlog(90000, 2), {Name: "growth", Value: 1, Target: 1}}, 6, ReasonMetrics},
		// Under the backlog target, but arrivals outpace the consumers
		// by half: 2 × 1.5 = 3 consumers stop the growth.
		{"backlog growing", 2, []Signal{backlog(600, 2), {Name: "growth", Value: 1.5, Target: 1}}, 3, ReasonMetrics},
		{"backlog steady", 3, []Signal{backlog(1400, 3), {Name: "growth", Value: 1.02, Target: 1}}, 3, ReasonTolerance},
		{"no queue metrics", 3, []Signal{{Name: "backlog", State: SignalMissing}, {Name: "growth", State: SignalMissing}}, 3, ReasonMissingData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := Decide(p, History{}, Observation{At: t0, Current: tt.current, Signals: tt.signals})
			if d.Desired != tt.desired || d.Reason != tt.reason {
				t.Errorf("%d → %d (%s: %s), want → %d (%s)", d.Current, d.Desired, d.Reason, d.Detail, tt.desired, tt.reason)
			}
		})
	}
}

// Values no sampler should produce still give a sane decision.
func TestDecideWildValues(t *testing.T) {
	for _, sig := range []Signal{{Name: "zero target", Value: 5, Target: 0}, {Name: "inf", Value: math.Inf(1), Target: 1}} {
		d, _ := Decide(apiPolicy, History{}, Observation{At: t0, Current: 3, Signals: []Signal{sig}})
		if d.Desired != apiPolicy.Max {
			t.Errorf("%s: %d → %d (%s), want the max", sig.Name, d.Current, d.Desired, d.Reason)
		}
	}
	d, _ := Decide(apiPolicy, History{}, Observation{At: t0, Current: 3, Signals: []Signal{{Name: "nan", Value: nan, Target: 1}}})
	if d.Desired != 3 || d.Reason != ReasonMissingData {
		t.Errorf("NaN: %d → %d (%s), want a hold for missing data", d.Current, d.Desired, d.Reason)
	}
}

func TestDecideIsPure(t *testing.T) {
	o := Observation{At: t0, Current: 3, Signals: []Signal{{Name: "cpu", Value: 0.1, Target: 0.5}}}
	_, h1 := Decide(apiPolicy, History{}, o)
	o.At = o.At.Add(interval)
	a, ha := Decide(apiPolicy, h1, o)
	b, hb := Decide(apiPolicy, h1, o)
	if a.Desired != b.Desired || a.Reason != b.Reason || len(ha.recs) != len(hb.recs) || len(h1.recs) != 1 {
		t.Fatalf("same inputs, different outputs: %+v %+v; history %d %d %d", a, b, len(ha.recs), len(hb.recs), len(h1.recs))
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		ok   bool
	}{
		{"defaults", apiPolicy, true},
		{"min above max", Policy{Min: 5, Max: 3}, false},
		{"min zero", Policy{Min: 0, Max: 3}, false},
		{"tolerance one", Policy{Min: 1, Max: 3, Tolerance: 1}, false},
		{"negative window", Policy{Min: 1, Max: 3, DownWindow: -time.Second}, false},
		{"min equals max", Policy{Min: 3, Max: 3}, true},
	}
	for _, tt := range tests {
		if err := tt.p.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
