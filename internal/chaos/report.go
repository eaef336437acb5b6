package chaos

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

// Report is the result of a run of the suite.
type Report struct {
	Started        time.Time `json:"started"`
	Finished       time.Time `json:"finished"`
	BaseURL        string    `json:"base_url"`
	Project        string    `json:"project"`
	Schedule       string    `json:"schedule"`
	WriteRate      int       `json:"write_rate"`
	ReadRate       int       `json:"read_rate"`
	Keys           int       `json:"keys"`
	DeleteFraction float64   `json:"delete_fraction"`
	Seed           uint64    `json:"seed"`
	Notes          []string  `json:"notes,omitempty"`
	Scenarios      []Result  `json:"scenarios"`
	Pass           bool      `json:"pass"`
}

// Result is the result of one scenario.
type Result struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Pass        bool   `json:"pass"`
	// Error says why the scenario could not run as planned.
	Error       string            `json:"error,omitempty"`
	Events      []Event           `json:"events"`
	Writes      Stream            `json:"writes"`
	Reads       Stream            `json:"reads"`
	AckLatency  Latency           `json:"ack_latency_ms"`
	ReadLatency Latency           `json:"read_latency_ms"`
	Ledger      load.LedgerStats  `json:"ledger"`
	Convergence ConvergenceResult `json:"convergence"`
	Checks      []Check           `json:"checks"`
}

// Event is a moment of a scenario, in seconds from the start of its load.
type Event struct {
	At   float64 `json:"at_s"`
	What string  `json:"what"`
}

// Stream is the traffic of writes or of reads in one scenario.
type Stream struct {
	Sent         int     `json:"sent"`
	Available    int     `json:"ok"`
	Availability float64 `json:"availability"`
	// LongestDown is the longest run of seconds under the scenario's
	// minimum availability.
	LongestDown load.Window    `json:"longest_under_min"`
	Errors      map[string]int `json:"errors"`
	// PerSecond is the availability of each second, by when requests were
	// due; SentPerSecond how many fell due.
	PerSecond     []float64 `json:"availability_per_second"`
	SentPerSecond []int     `json:"sent_per_second"`
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// ConvergenceResult is the check of every key written in a scenario.
type ConvergenceResult struct {
	Converged bool `json:"converged"`
	// Seconds from the load stopping until every key passed.
	Seconds    float64        `json:"seconds"`
	Keys       int            `json:"keys"`
	Passed     map[string]int `json:"passed"`
	Lost       int            `json:"lost"`
	Corrupt    int            `json:"unexplained"`
	Unverified int            `json:"unread"`
	Flapped    int            `json:"flapped"`
	Problems   []load.Verdict `json:"problems,omitempty"`
}

func stream(outcomes []load.Outcome, secs []load.Second, writes bool, min float64) Stream {
	s := Stream{Errors: load.Kinds(outcomes, writes), LongestDown: load.LongestBelow(secs, min)}
	for _, sec := range secs {
		s.Sent += sec.Sent
		s.Available += sec.Available
		s.PerSecond = append(s.PerSecond, round(sec.Ratio(), 4))
		s.SentPerSecond = append(s.SentPerSecond, sec.Sent)
	}
	if s.Sent > 0 {
		s.Availability = round(float64(s.Available)/float64(s.Sent), 5)
	}
	return s
}

func latency(l load.Latency) Latency {
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }
	return Latency{Count: l.Count, P50: ms(l.P50), P99: ms(l.P99), Max: ms(l.Max)}
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// WriteJSON writes the report to path, creating its directory.
func WriteJSON(path string, r Report) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("chaos: report: %w", err)
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("chaos: report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("chaos: report: %w", err)
	}
	return nil
}

// WriteSummary writes a readable summary of the report.
func WriteSummary(w io.Writer, r Report) {
	fmt.Fprintf(w, "kvfleet chaos: schedule %s, %d writes/s + %d reads/s over %d keys per scenario (%.0f %% deletes), through %s, project %s, seed %d\n",
		r.Schedule, r.WriteRate, r.ReadRate, r.Keys, r.DeleteFraction*100, r.BaseURL, r.Project, r.Seed)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n== %s: %s  [%s]\n", s.Name, verdict(s.Pass), s.Description)
		if s.Error != "" {
			fmt.Fprintf(w, "   error: %s\n", s.Error)
		}
		for _, e := range s.Events {
			fmt.Fprintf(w, "   %6.1fs  %s\n", e.At, e.What)
		}
		for _, x := range []struct {
			name string
			s    Stream
		}{{"writes", s.Writes}, {"reads ", s.Reads}} {
			fmt.Fprintf(w, "   %s %d sent, %.2f %% ok; longest under the minimum: %s\n", x.name, x.s.Sent, x.s.Availability*100, windowText(x.s.LongestDown))
			if len(x.s.PerSecond) > 0 {
				fmt.Fprintf(w, "          per second: %s\n", strip(x.s.PerSecond, x.s.SentPerSecond))
			}
			if len(x.s.Errors) > 0 {
				fmt.Fprintf(w, "          errors: %s\n", kindsText(x.s.Errors))
			}
		}
		fmt.Fprintf(w, "   202 latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d acknowledged); reads: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			s.AckLatency.P50, s.AckLatency.P99, s.AckLatency.Max, s.AckLatency.Count, s.ReadLatency.P50, s.ReadLatency.P99, s.ReadLatency.Max)
		c := s.Convergence
		fmt.Fprintf(w, "   ledger: %d keys, %d writes attempted, %d acknowledged (%d deletes), %d ambiguous, %d certainly not applied\n",
			s.Ledger.Keys, s.Ledger.Attempted, s.Ledger.Acknowledged, s.Ledger.AckedDeletes, s.Ledger.Ambiguous, s.Ledger.NotApplied)
		if c.Keys > 0 {
			fmt.Fprintf(w, "   convergence: %s; lost %d, unexplained %d, unread %d; %s\n",
				convergeText(c), c.Lost, c.Corrupt, c.Unverified, kindsText(c.Passed))
		}
		for _, p := range c.Problems {
			fmt.Fprintf(w, "     key %s: %s\n", p.Key, p.Why)
		}
		for _, ch := range s.Checks {
			fmt.Fprintf(w, "   [%s] %s: %s (limit %s)\n", checkMark(ch.Pass), ch.Name, ch.Observed, ch.Limit)
		}
	}
	passed := 0
	for _, s := range r.Scenarios {
		if s.Pass {
			passed++
		}
	}
	fmt.Fprintf(w, "\n%s: %d of %d scenarios passed (%s)\n", verdict(r.Pass), passed, len(r.Scenarios), r.Finished.Sub(r.Started).Round(time.Second))
	fmt.Fprintf(w, "per second: '#' 99 %% or more ok, '+' 90 %%, '-' 50 %%, '.' under 50 %%, '_' nothing due\n")
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

func checkMark(pass bool) string {
	if pass {
		return "ok"
	}
	return "FAIL"
}

func windowText(w load.Window) string {
	if w.Seconds == 0 {
		return "none"
	}
	return fmt.Sprintf("%d s from second %d", w.Seconds, w.Start)
}

func convergeText(c ConvergenceResult) string {
	if c.Converged {
		return fmt.Sprintf("converged %.1f s after the load stopped", c.Seconds)
	}
	return "DID NOT CONVERGE"
}

// kindsText lists counts, largest first.
func kindsText(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// strip draws availability per second, one character a second, in rows
// of 60.
func strip(avail []float64, sent []int) string {
	var b strings.Builder
	for i, a := range avail {
		if i > 0 && i%60 == 0 {
			b.WriteString("\n                      ")
		}
		switch {
		case i < len(sent) && sent[i] == 0:
			b.WriteByte('_')
		case a >= 0.99:
			b.WriteByte('#')
		case a >= 0.9:
			b.WriteByte('+')
		case a >= 0.5:
			b.WriteByte('-')
		default:
			b.WriteByte('.')
		}
	}
	return b.String()
}
