package autoscale

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Schema names the JSON layout of a Report; a reader checks it.
const Schema = "kvfleet-autoscale/1"

// Report is the JSON result of a run (autoscale-report.json; the test
// report's is docs/report/autoscale.json). Every
// t_s is in seconds from the start of the run (the idle phase).
type Report struct {
	Schema    string     `json:"schema"`
	Started   time.Time  `json:"started"`
	Finished  time.Time  `json:"finished"`
	Mode      string     `json:"mode"`
	BaseURL   string     `json:"base_url"`
	Project   string     `json:"project"`
	Machine   Machine    `json:"machine"`
	Settings  Settings   `json:"settings"`
	Load      LoadShape  `json:"load"`
	Phases    []Phase    `json:"phases"`
	Timeline  []Point    `json:"timeline"`
	Decisions []Decision `json:"decisions"`
	Requests  Requests   `json:"requests"`
	Checks    []Check    `json:"checks"`
	Notes     []string   `json:"notes,omitempty"`
	Pass      bool       `json:"pass"`
}

// Machine is where the run was measured.
type Machine struct {
	CPUs int    `json:"cpus"`
	Go   string `json:"go"`
}

// Settings are the scaler's, as the run used them.
type Settings struct {
	IntervalS             float64 `json:"interval_s"`
	CooldownS             float64 `json:"cooldown_s"`
	DownWindowS           float64 `json:"down_window_s"`
	SignalWindowS         float64 `json:"signal_window_s"`
	Tolerance             float64 `json:"tolerance"`
	APIMin                int     `json:"api_min"`
	APIMax                int     `json:"api_max"`
	ConsumerMin           int     `json:"consumer_min"`
	ConsumerMax           int     `json:"consumer_max"`
	APICPUTarget          float64 `json:"api_cpu_target"`
	APICPUCores           float64 `json:"api_cpu_cores"`
	APIInFlightTarget     float64 `json:"api_in_flight_target"`
	ConsumerBacklogTarget float64 `json:"consumer_backlog_target"`
}

// LoadShape is the traffic the run drove.
type LoadShape struct {
	Concurrency     int     `json:"concurrency"`
	WriteFraction   float64 `json:"write_fraction"`
	ValueBytes      int     `json:"value_bytes"`
	Keys            int     `json:"keys"`
	TricklePerS     int     `json:"trickle_per_s"`
	RequestTimeoutS float64 `json:"request_timeout_s"`
	Seed            uint64  `json:"seed"`
}

// Phase is one part of the schedule. OfferedPerS is what was measured:
// the requests sent per second (the load is closed-loop, so what it
// offers is what the fleet answers plus what failed).
type Phase struct {
	Name        string  `json:"name"`
	StartS      float64 `json:"start_s"`
	EndS        float64 `json:"end_s"`
	OfferedPerS float64 `json:"offered_per_s"`
	Concurrency int     `json:"concurrency"`
	Latency     Latency `json:"latency_ms"`
}

// Latency summarises the successes' latencies in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Decision is a change the scaler decided, and how carrying it out went.
type Decision struct {
	T         float64 `json:"t_s"`
	Service   string  `json:"service"`
	From      int     `json:"from"`
	To        int     `json:"to"`
	Direction string  `json:"direction"`
	Reason    string  `json:"reason"`
	Signals   string  `json:"signals"`
	Detail    string  `json:"detail,omitempty"`
	DoneS     float64 `json:"done_s"`
	Error     string  `json:"error,omitempty"`
}

// Requests counts every request of the run.
type Requests struct {
	Sent   int            `json:"sent"`
	OK     int            `json:"ok"`
	Failed int            `json:"failed"`
	Errors map[string]int `json:"errors"`
	// Failures lists the failed requests (up to 10,000).
	Failures []FailureJSON `json:"failures,omitempty"`
}

// FailureJSON is one failed request.
type FailureJSON struct {
	T    float64 `json:"t_s"`
	Op   string  `json:"op"`
	Kind string  `json:"kind"`
}

func decisions(changes []Change) []Decision {
	out := make([]Decision, len(changes))
	for i, c := range changes {
		dir := "down"
		if c.Up() {
			dir = "up"
		}
		out[i] = Decision{T: round(c.T, 3), Service: c.Service, From: c.Current, To: c.Desired, Direction: dir,
			Reason: c.Reason, Signals: c.Summary, Detail: c.Detail, DoneS: round(c.Done, 3), Error: c.Err}
	}
	return out
}

// WriteJSON writes the report to path, creating its directory.
func WriteJSON(path string, r Report) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("autoscale: %w", err)
		}
	}
	data, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("autoscale: encoding the report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("autoscale: %w", err)
	}
	return nil
}

// WriteSummary prints the phases, the changes, a timeline strip every
// ten seconds and the checks.
func WriteSummary(w io.Writer, r Report) {
	fmt.Fprintf(w, "\nautoscale test (%s schedule) against %s, project %s, %d CPUs\n", r.Mode, r.BaseURL, r.Project, r.Machine.CPUs)
	fmt.Fprintf(w, "scaler: interval %gs, cooldown %gs, down window %gs; api %d-%d, consumers %d-%d\n\n",
		r.Settings.IntervalS, r.Settings.CooldownS, r.Settings.DownWindowS, r.Settings.APIMin, r.Settings.APIMax, r.Settings.ConsumerMin, r.Settings.ConsumerMax)
	width := len("phase")
	for _, p := range r.Phases {
		width = max(width, len(p.Name))
	}
	fmt.Fprintf(w, "%-*s %7s %7s %9s %8s %8s %8s\n", width, "phase", "from s", "to s", "req/s", "p50 ms", "p99 ms", "max ms")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%-*s %7.0f %7.0f %9.0f %8.1f %8.1f %8.0f\n", width, p.Name, p.StartS, p.EndS, p.OfferedPerS, p.Latency.P50, p.Latency.P99, p.Latency.Max)
	}
	fmt.Fprintf(w, "\nchanges:\n")
	for _, d := range r.Decisions {
		status := fmt.Sprintf("done at %.0f s", d.DoneS)
		if d.Error != "" {
			status = "FAILED: " + d.Error
		}
		fmt.Fprintf(w, "  t=%4.0f s  %-8s %d→%d  %-9s %s; %s\n", d.T, d.Service, d.From, d.To, d.Reason, d.Signals, status)
	}
	// "paused" marks the seconds in which the test held the consumers
	// paused: a backlog there is the induced fault's.
	fmt.Fprintf(w, "\n%6s %4s %4s %6s %9s %9s %8s %7s %7s\n", "t s", "api", "cons", "", "cpu/rep", "inflight", "backlog", "ok/s", "fail/s")
	for _, p := range r.Timeline {
		if p.T%10 != 0 {
			continue
		}
		paused := ""
		if p.ConsumersPaused {
			paused = "paused"
		}
		fmt.Fprintf(w, "%6d %4d %4d %6s %9s %9s %8s %7d %7d\n", p.T, p.APIReplicas, p.ConsumerReplicas, paused,
			opt(p.APICPU, "%.2f"), opt(p.APIInFlight, "%.1f"), opt(p.Backlog, "%.0f"), p.OK, p.Failed)
	}
	fmt.Fprintf(w, "\nrequests: %d sent, %d ok, %d failed%s\n\n", r.Requests.Sent, r.Requests.OK, r.Requests.Failed, errorsText(r.Requests.Errors))
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	verdict := "PASSED"
	if !r.Pass {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\nautoscale test %s\n", verdict)
}

func opt(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func errorsText(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + strings.TrimSpace(kindsText(m)) + ")"
}
