package chaos

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func scenarioNames(ss []Scenario) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

func TestSelect(t *testing.T) {
	full, err := Select(ScheduleFull, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFull := []string{
		"baseline", "redis-master-kill", "redis-master-isolate", "rabbitmq-node-kill", "rabbitmq-all-stop",
		"consumers-kill", "database-stop", "api-replica-kill", "api-scale",
	}
	if got := scenarioNames(full); !slices.Equal(got, wantFull) {
		t.Fatalf("full schedule %v, want %v", got, wantFull)
	}
	ci, err := Select(ScheduleCI, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := scenarioNames(ci); !slices.Equal(got, []string{"baseline", "redis-master-kill", "consumers-kill", "api-replica-kill"}) {
		t.Fatalf("ci schedule %v", got)
	}
	// Named scenarios come from every scenario, in the full order, once.
	named, err := Select(ScheduleCI, []string{"api-scale", "database-stop", "api-scale"})
	if err != nil {
		t.Fatal(err)
	}
	if got := scenarioNames(named); !slices.Equal(got, []string{"database-stop", "api-scale"}) {
		t.Fatalf("named %v", got)
	}
	if _, err := Select(ScheduleFull, []string{"api-replica-kil"}); err == nil || !strings.Contains(err.Error(), "api-replica-kill") {
		t.Fatalf("an unknown scenario: %v, want an error listing the known ones", err)
	}
	if _, err := Select("nightly", nil); err == nil {
		t.Fatal("an unknown schedule was accepted")
	}
}

// load is how long a schedule keeps the fleet under load.
func loadTime(ss []Scenario) time.Duration {
	var d time.Duration
	for _, s := range ss {
		d += s.Before + s.Hold + s.After
	}
	return d
}

func TestSchedulesFitTheirBudgets(t *testing.T) {
	full, _ := Select(ScheduleFull, nil)
	ci, _ := Select(ScheduleCI, nil)
	// Seeding, healing and convergence add about a minute a scenario.
	if d := loadTime(full) + time.Duration(len(full))*time.Minute; d > 20*time.Minute {
		t.Errorf("the full schedule takes about %v, over 20 minutes", d)
	}
	if d := loadTime(ci) + time.Duration(len(ci))*time.Minute; d > 6*time.Minute {
		t.Errorf("the CI schedule takes about %v, over 6 minutes", d)
	}
	quick, _ := Select(ScheduleCI, []string{"database-stop"})
	slow, _ := Select(ScheduleFull, []string{"database-stop"})
	if loadTime(quick) >= loadTime(slow) {
		t.Errorf("the CI pace (%v) is not shorter than the full one (%v)", loadTime(quick), loadTime(slow))
	}
}

func TestEveryScenarioHasItsThresholds(t *testing.T) {
	all, _ := Select(ScheduleFull, nil)
	for _, s := range all {
		th := s.Thresholds
		if th.MinAvailability != 0.5 {
			t.Errorf("%s: minimum availability %v, want 0.5", s.Name, th.MinAvailability)
		}
		if th.MaxReadDown != 10*time.Second {
			t.Errorf("%s: reads may be down %v, want 10s (no fault stops reads)", s.Name, th.MaxReadDown)
		}
		switch s.Name {
		case "rabbitmq-all-stop":
			if th.MaxWriteDown != 0 || th.WriteRecovery != 30*time.Second {
				t.Errorf("%s: writes must recover within 30s of the start, not be up throughout: %+v", s.Name, th)
			}
		default:
			if th.MaxWriteDown != 10*time.Second {
				t.Errorf("%s: writes may be down %v, want 10s", s.Name, th.MaxWriteDown)
			}
		}
		if (s.Name == "baseline") != th.NoErrors {
			t.Errorf("%s: NoErrors = %v; only the fault-free baseline must have no error at all", s.Name, th.NoErrors)
		}
		if (s.Fault == nil) != (s.Name == "baseline") {
			t.Errorf("%s: fault %v", s.Name, s.Fault != nil)
		}
	}
	// The Done-when of the database outage: writes accepted, cached keys read.
	db, _ := Select(ScheduleFull, []string{"database-stop"})
	if db[0].Hold != 60*time.Second {
		t.Errorf("the database is stopped for %v, want 60s", db[0].Hold)
	}
	mq, _ := Select(ScheduleFull, []string{"rabbitmq-all-stop"})
	if mq[0].Hold != 20*time.Second {
		t.Errorf("the broker is stopped for %v, want 20s", mq[0].Hold)
	}
}

func TestFaultsAreFreshEachRun(t *testing.T) {
	all, _ := Select(ScheduleFull, nil)
	for _, s := range all {
		if s.Fault == nil {
			continue
		}
		if a, b := s.Fault(), s.Fault(); a == b {
			t.Errorf("%s: Fault returns the same value twice; state from one run would leak into the next", s.Name)
		}
	}
}
