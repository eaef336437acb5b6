package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// E2ESchema names the layout of E2E.
const E2ESchema = "kvfleet-e2e/1"

// E2E is the end-to-end suite's result, case by case, read from the
// events of `go test -json`.
type E2E struct {
	Schema   string    `json:"schema"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	BaseURL  string    `json:"base_url,omitempty"`
	Project  string    `json:"project,omitempty"`
	Package  string    `json:"package"`
	Pass     bool      `json:"pass"`
	Cases    []Case    `json:"cases"`
	// Output is what the package printed outside any test (a build
	// failure, a panic), when the run did not pass.
	Output []string `json:"output,omitempty"`
}

// Case is one test or subtest.
type Case struct {
	Name    string  `json:"name"` // Test or Test/sub
	Result  string  `json:"result"`
	Seconds float64 `json:"seconds"`
	// Log is what the case logged (t.Log, t.Fatal), without go test's
	// own framing lines.
	Log []string `json:"log,omitempty"`
}

// testEvent is one line of `go test -json` (cmd/test2json).
type testEvent struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// ParseTestEvents reads the events of `go test -json` and returns the
// cases in the order they started.
func ParseTestEvents(r io.Reader) (*E2E, error) {
	res := &E2E{Schema: E2ESchema}
	byName := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	pkgResult := ""
	for sc.Scan() {
		line := sc.Bytes()
		var ev testEvent
		if json.Unmarshal(line, &ev) != nil || ev.Action == "" {
			// go test prints build errors as plain text.
			if s := strings.TrimSpace(string(line)); s != "" {
				res.Output = append(res.Output, s)
			}
			continue
		}
		if res.Started.IsZero() && !ev.Time.IsZero() {
			res.Started = ev.Time.UTC()
		}
		if !ev.Time.IsZero() {
			res.Finished = ev.Time.UTC()
		}
		if ev.Package != "" {
			res.Package = ev.Package
		}
		if ev.Test == "" {
			switch ev.Action {
			case "pass", "fail", "skip":
				pkgResult = ev.Action
			case "output":
				res.Output = append(res.Output, strings.TrimRight(ev.Output, "\n"))
			}
			continue
		}
		i, ok := byName[ev.Test]
		if !ok {
			i = len(res.Cases)
			byName[ev.Test] = i
			res.Cases = append(res.Cases, Case{Name: ev.Test, Result: "incomplete"})
		}
		c := &res.Cases[i]
		switch ev.Action {
		case "pass", "fail", "skip":
			c.Result, c.Seconds = ev.Action, ev.Elapsed
		case "output":
			if l := caseLog(ev.Output); l != "" {
				c.Log = append(c.Log, l)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: reading test events: %w", err)
	}
	if len(res.Cases) == 0 && pkgResult == "" {
		return nil, fmt.Errorf("report: no test events in the input (was it `go test -json`?)")
	}
	res.Pass = pkgResult == "pass"
	for _, c := range res.Cases {
		if c.Result != "pass" && c.Result != "skip" {
			res.Pass = false
		}
	}
	if res.Pass {
		res.Output = nil
	}
	return res, nil
}

// caseLog keeps what a test logged and drops go test's framing lines
// (=== RUN, --- PASS, ...).
func caseLog(out string) string {
	s := strings.TrimSpace(out)
	for _, frame := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(s, frame) {
			return ""
		}
	}
	return s
}
