package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

// seconds builds per-second traffic from availabilities in percent.
func seconds(pcts ...int) []load.Second {
	s := make([]load.Second, len(pcts))
	for i, p := range pcts {
		s[i] = load.Second{Sent: 100, Available: p}
	}
	return s
}

// repeat is n seconds at pct.
func repeat(pct, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = pct
	}
	return out
}

func cat(parts ...[]int) []int {
	var out []int
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func failing(checks []Check) []string {
	var out []string
	for _, c := range checks {
		if !c.Pass {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestEvaluate(t *testing.T) {
	std := Thresholds{MinAvailability: 0.5, MaxWriteDown: 10 * time.Second, MaxReadDown: 10 * time.Second}
	broker := Thresholds{MinAvailability: 0.5, MaxReadDown: 10 * time.Second, WriteRecovery: 30 * time.Second}
	quiet := std
	quiet.NoErrors = true
	up := seconds(repeat(100, 60)...)
	good := Measures{Writes: up, Reads: up, HealSecond: 20, Converged: true, ConvergeTook: time.Second}
	with := func(change func(*Measures)) Measures {
		m := good
		change(&m)
		return m
	}
	cases := []struct {
		name string
		th   Thresholds
		m    Measures
		fail []string // substrings of the names of the checks that fail
	}{
		{"all good", std, good, nil},
		{"a lost write", std, with(func(m *Measures) { m.Lost = 1; m.Converged = false }), []string{"lost", "converged"}},
		{"an unexplained value", std, with(func(m *Measures) { m.Corrupt = 1; m.Converged = false }), []string{"no write explains", "converged"}},
		{"keys not read back", std, with(func(m *Measures) { m.Unverified = 3 }), []string{"converged"}},
		{"writes down exactly 10 s", std, with(func(m *Measures) { m.Writes = seconds(cat(repeat(100, 5), repeat(0, 10), repeat(100, 5))...) }), nil},
		{"writes down 11 s", std, with(func(m *Measures) { m.Writes = seconds(cat(repeat(100, 5), repeat(49, 11), repeat(100, 5))...) }), []string{"write availability"}},
		{"two short outages are not one long one", std, with(func(m *Measures) {
			m.Reads = seconds(cat(repeat(0, 8), repeat(50, 1), repeat(0, 8))...)
		}), nil},
		{"reads down 12 s", std, with(func(m *Measures) { m.Reads = seconds(cat(repeat(0, 12), repeat(100, 5))...) }), []string{"read availability"}},
		{"broker: writes back 25 s after the start", broker, with(func(m *Measures) {
			m.Writes = seconds(cat(repeat(100, 10), repeat(0, 35), repeat(100, 10))...) // heal at 20, back at 45
		}), nil},
		{"broker: writes back 31 s after the start", broker, with(func(m *Measures) {
			m.Writes = seconds(cat(repeat(100, 10), repeat(0, 41), repeat(100, 10))...) // heal at 20, back at 51
		}), []string{"writes accepted again"}},
		{"broker: writes never back", broker, with(func(m *Measures) {
			m.Writes = seconds(cat(repeat(100, 10), repeat(0, 50))...)
		}), []string{"writes accepted again"}},
		{"broker: the long write outage itself is allowed", broker, with(func(m *Measures) {
			m.Writes = seconds(cat(repeat(0, 40), repeat(100, 10))...)
		}), nil},
		{"baseline: one error", quiet, with(func(m *Measures) { m.Errors = 1 }), []string{"5xx"}},
		{"baseline: none", quiet, good, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checks := Evaluate(tc.th, tc.m, 2*time.Minute)
			got := failing(checks)
			if len(got) != len(tc.fail) {
				t.Fatalf("failing checks %q, want ones matching %q (all: %+v)", got, tc.fail, checks)
			}
			for i, want := range tc.fail {
				if !strings.Contains(got[i], want) {
					t.Fatalf("failing checks %q, want ones matching %q", got, tc.fail)
				}
			}
			if Passed(checks) != (len(tc.fail) == 0) {
				t.Fatalf("Passed = %v with failing checks %q", Passed(checks), got)
			}
		})
	}
}

func TestEvaluateSaysWhatItChecked(t *testing.T) {
	th := Thresholds{MinAvailability: 0.5, MaxWriteDown: 10 * time.Second, WriteRecovery: 30 * time.Second}
	m := Measures{Writes: seconds(cat(repeat(100, 3), repeat(0, 12), repeat(100, 3))...), HealSecond: 5, Converged: true}
	var lines []string
	for _, c := range Evaluate(th, m, time.Minute) {
		lines = append(lines, c.Name+": "+c.Observed+" / "+c.Limit)
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"write availability under 50 %: 12 s (from second 3) / at most 10s in a row",
		"after the heal starts: after 10 s (second 15) / within 30s",
		"every key converged: after 0.0 s / within 1m0s",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("checks do not say %q:\n%s", want, text)
		}
	}
	if Passed(nil) {
		t.Error("no checks at all passed")
	}
}
