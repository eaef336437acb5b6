package hostile

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

func TestParseOptionsKeepsTrafficOnThisMachine(t *testing.T) {
	for _, api := range []string{"http://127.0.0.1:8000", "http://localhost:18100", "http://[::1]:8000"} {
		if _, err := ParseOptions([]string{"-api", api}); err != nil {
			t.Errorf("-api %s: %v", api, err)
		}
	}
	for _, api := range []string{"http://10.0.0.1:8000", "http://example.com", "https://127.0.0.1:8000", "::"} {
		if _, err := ParseOptions([]string{"-api", api}); err == nil {
			t.Errorf("-api %s accepted; the suite must attack only a loopback address", api)
		}
	}
	o, err := ParseOptions([]string{"-quick"})
	if err != nil || o.Phase != 10*time.Second || o.FloodMax != 800 {
		t.Errorf("-quick = %+v, %v; want 10 s phases and a flood of at most 800", o, err)
	}
	for _, bad := range [][]string{{"-phase", "500ms"}, {"-phase", "1h"}, {"-good-writes", "0"}, {"-backlog-writes", "5000"}, {"-project", ""}} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestDescribeTellsJSONErrorsFromOthers(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        answer
	}{
		{"accepted", 202, "application/json", `{"version":"01ab"}`, answer{Status: 202, Version: "01ab"}},
		{"JSON error", 503, "application/json; charset=utf-8", `{"detail":"full","code":"queue_full"}`,
			answer{Status: 503, Code: "queue_full", JSONError: true}},
		{"HTML error", 502, "text/html", `<html>bad gateway</html>`, answer{Status: 502}},
		{"JSON body, wrong type", 400, "text/plain", `{"detail":"x","code":"y"}`, answer{Status: 400, Code: "y"}},
		{"no detail", 400, "application/json", `{"code":"y"}`, answer{Status: 400, Code: "y"}},
		{"empty body", 408, "application/json", ``, answer{Status: 408}},
	}
	for _, tt := range tests {
		if got := describe(tt.status, tt.contentType, []byte(tt.body)); got != tt.want {
			t.Errorf("%s: describe = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestTallyCountsByAnswer(t *testing.T) {
	tl := newTally()
	tl.add(answer{Status: 202, Version: "v"})
	tl.add(answer{Status: 503, Code: "queue_full", JSONError: true})
	tl.add(answer{Status: 502})
	tl.add(answer{Failure: "timeout"})
	if tl.Sent != 4 || tl.NotJSON != 1 || tl.Unanswered != 1 || tl.count(202, "") != 1 || tl.count(503, "queue_full") != 1 {
		t.Errorf("tally = %+v", tl)
	}
}

func TestGoodStats(t *testing.T) {
	now := time.Now()
	var outcomes []load.Outcome
	for i := range 100 {
		outcomes = append(outcomes, load.Outcome{Request: load.Request{Op: load.OpGet, Key: "k"}, Sent: now,
			Latency: time.Duration(i+1) * time.Millisecond, Status: http.StatusOK})
	}
	outcomes[0].Status, outcomes[0].Code = http.StatusServiceUnavailable, "database_unavailable"
	outcomes = append(outcomes,
		load.Outcome{Request: load.Request{Op: load.OpPut, Key: "k"}, Sent: now, Status: 503, Code: "queue_full"},
		load.Outcome{Request: load.Request{Op: load.OpPut, Key: "k"}}, // never sent: not counted
	)
	s := goodStats(outcomes)
	if s.Requests != 101 || s.Errors != 1 || s.QueueFull != 1 || s.p99 != 99*time.Millisecond {
		t.Errorf("goodStats = %+v", s)
	}
}

func TestParseDepth(t *testing.T) {
	out := `[{"name":"kvfleet.writes","messages":12},{"name":"kvfleet.writes.dead","messages":0}]`
	if n, err := parseDepth(out, "kvfleet.writes"); err != nil || n != 12 {
		t.Errorf("parseDepth = %d, %v", n, err)
	}
	if n, err := parseDepth(out, "absent"); err != nil || n != 0 {
		t.Errorf("parseDepth of an undeclared queue = %d, %v", n, err)
	}
	if _, err := parseDepth("Error: nodedown", "kvfleet.writes"); err == nil || !strings.Contains(err.Error(), "nodedown") {
		t.Errorf("parseDepth of an error = %v", err)
	}
}

func TestPutBodyEscapesAsAClientLibraryWould(t *testing.T) {
	b := putBody("k", "<", 3)
	if string(b) != `{"padding":"ppp","key_name":"k","key_value":"\u003c"}` {
		t.Errorf("putBody = %s", b)
	}
}

// A missed measurement that is not gated is reported but does not fail the
// suite; any failed gated check does.
func TestPassedIgnoresOnlyUngatedChecks(t *testing.T) {
	ok := check("ok", true, "")
	missed := notGated(check("p99", false, ""))
	failed := check("lost", false, "")
	rep := Report{Checks: []Check{ok}, Scenarios: []ScenarioResult{{Checks: []Check{ok, missed}}}}
	if !passed(rep) {
		t.Error("a report whose only miss is ungated did not pass")
	}
	rep.Scenarios = append(rep.Scenarios, ScenarioResult{Checks: []Check{failed}})
	if passed(rep) {
		t.Error("a report with a failed gated check passed")
	}
	if mark(missed) != "MISS" || mark(failed) != "FAIL" || mark(ok) != "PASS" {
		t.Errorf("marks %q %q %q", mark(missed), mark(failed), mark(ok))
	}
}
