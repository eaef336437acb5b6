package chaos

import (
	"fmt"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

// Thresholds are what a scenario must show to pass. Whatever the
// thresholds, no acknowledged write may be lost and the fleet must converge
// within the convergence timeout. A zero duration is not checked.
type Thresholds struct {
	// MinAvailability: a second in which fewer requests than this fraction
	// got a working answer is "down".
	MinAvailability float64
	// MaxWriteDown and MaxReadDown bound the longest run of down seconds.
	MaxWriteDown, MaxReadDown time.Duration
	// WriteRecovery bounds the time from the start of the heal to the first
	// second in which writes are no longer down.
	WriteRecovery time.Duration
	// NoErrors: not one 5xx, transport error or request the client could
	// not send.
	NoErrors bool
}

// Measures are what a scenario's run showed.
type Measures struct {
	Writes, Reads []load.Second
	// HealSecond is the second of the run in which the heal started; -1
	// when there was none.
	HealSecond int
	// Errors counts 5xx answers, transport errors and requests not sent.
	Errors int
	// From the convergence check.
	Converged                 bool
	ConvergeTook              time.Duration
	Lost, Corrupt, Unverified int
	Flapped                   int
}

// Check is one threshold, evaluated.
type Check struct {
	Name     string `json:"name"`
	Limit    string `json:"limit"`
	Observed string `json:"observed"`
	Pass     bool   `json:"pass"`
}

// Evaluate checks the measures of a run against the thresholds.
// convergeTimeout is the bound the convergence check had.
func Evaluate(th Thresholds, m Measures, convergeTimeout time.Duration) []Check {
	checks := []Check{
		{
			Name: "acknowledged writes lost", Limit: "0",
			Observed: fmt.Sprint(m.Lost), Pass: m.Lost == 0,
		},
		{
			Name: "keys holding a value no write explains", Limit: "0",
			Observed: fmt.Sprint(m.Corrupt), Pass: m.Corrupt == 0,
		},
		{
			Name: "every key converged", Limit: "within " + convergeTimeout.String() + " of the load stopping",
			Observed: convergedText(m), Pass: m.Converged && m.Unverified == 0,
		},
	}
	pct := fmt.Sprintf("%.0f %%", th.MinAvailability*100)
	down := func(stream string, secs []load.Second, limit time.Duration) Check {
		w := load.LongestBelow(secs, th.MinAvailability)
		observed := "never"
		if w.Seconds > 0 {
			observed = fmt.Sprintf("%d s (from second %d)", w.Seconds, w.Start)
		}
		return Check{
			Name:     stream + " availability under " + pct,
			Limit:    "at most " + limit.String() + " in a row",
			Observed: observed,
			Pass:     time.Duration(w.Seconds)*time.Second <= limit,
		}
	}
	if th.MaxWriteDown > 0 {
		checks = append(checks, down("write", m.Writes, th.MaxWriteDown))
	}
	if th.MaxReadDown > 0 {
		checks = append(checks, down("read", m.Reads, th.MaxReadDown))
	}
	if th.WriteRecovery > 0 {
		c := Check{Name: "writes accepted again (availability " + pct + " or more) after the heal starts", Limit: "within " + th.WriteRecovery.String()}
		switch first := load.FirstAtLeast(m.Writes, m.HealSecond, th.MinAvailability); {
		case m.HealSecond < 0:
			c.Observed = "no heal"
		case first < 0:
			c.Observed = "not before the load stopped"
		default:
			took := time.Duration(first-m.HealSecond) * time.Second
			c.Observed = fmt.Sprintf("after %d s (second %d)", first-m.HealSecond, first)
			c.Pass = took <= th.WriteRecovery
		}
		checks = append(checks, c)
	}
	if th.NoErrors {
		checks = append(checks, Check{
			Name: "5xx, transport errors and requests not sent", Limit: "0",
			Observed: fmt.Sprint(m.Errors), Pass: m.Errors == 0,
		})
	}
	return checks
}

func convergedText(m Measures) string {
	switch {
	case m.Converged && m.Flapped > 0:
		return fmt.Sprintf("after %.1f s (%d keys changed after passing once)", m.ConvergeTook.Seconds(), m.Flapped)
	case m.Converged:
		return fmt.Sprintf("after %.1f s", m.ConvergeTook.Seconds())
	}
	return fmt.Sprintf("no: %d lost, %d unexplained, %d could not be read", m.Lost, m.Corrupt, m.Unverified)
}

// Passed reports whether every check passed.
func Passed(checks []Check) bool {
	for _, c := range checks {
		if !c.Pass {
			return false
		}
	}
	return len(checks) > 0
}
