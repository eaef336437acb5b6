package load

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// secs builds seconds from availabilities in percent (of 100 requests;
// -1 for a second without traffic).
func secs(pcts ...int) []Second {
	s := make([]Second, len(pcts))
	for i, p := range pcts {
		if p >= 0 {
			s[i] = Second{Sent: 100, Available: p}
		}
	}
	return s
}

func TestLongestBelow(t *testing.T) {
	cases := []struct {
		name string
		secs []Second
		want Window
	}{
		{"none", nil, Window{}},
		{"always up", secs(100, 100, 60, 50), Window{}},
		{"exactly the threshold is not below", secs(50, 50), Window{}},
		{"one dip", secs(100, 40, 0, 49, 100), Window{Start: 1, Seconds: 3}},
		{"the longest of two", secs(0, 100, 10, 20, 30, 100, 0, 0), Window{Start: 2, Seconds: 3}},
		{"the earliest of equals", secs(0, 0, 100, 0, 0), Window{Start: 0, Seconds: 2}},
		{"down until the end", secs(100, 10, 10), Window{Start: 1, Seconds: 2}},
		{"a second without traffic ends a window", secs(10, -1, 10), Window{Start: 0, Seconds: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := LongestBelow(tc.secs, 0.5); got != tc.want {
				t.Fatalf("LongestBelow = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFirstAtLeast(t *testing.T) {
	s := secs(100, 0, 0, -1, 30, 70, 100)
	cases := []struct {
		from, want int
	}{
		{0, 0}, {1, 5}, {5, 5}, {6, 6}, {7, -1}, {-3, 0},
	}
	for _, tc := range cases {
		if got := FirstAtLeast(s, tc.from, 0.5); got != tc.want {
			t.Errorf("FirstAtLeast(from %d) = %d, want %d", tc.from, got, tc.want)
		}
	}
}

func TestPerSecond(t *testing.T) {
	start := t0
	o := func(op Op, s float64, status int, code string) Outcome {
		return Outcome{Request: Request{Op: op, Intended: at(s)}, Status: status, Code: code, Version: map[bool]string{true: ver(1)}[status == 202 || status == 200]}
	}
	outcomes := []Outcome{
		o(OpPut, 0.1, 202, ""), o(OpDelete, 0.9, 503, "queue_unavailable"),
		o(OpPut, 2.5, 202, ""),
		o(OpGet, 0.2, 200, ""), o(OpGet, 0.3, 404, "not_found"), o(OpGet, 0.4, 404, ""), o(OpGet, 1.0, 503, "database_unavailable"),
		o(OpPut, -1, 202, ""), // before the start: ignored
	}
	writes := PerSecond(outcomes, start, true)
	if want := []Second{{2, 1}, {0, 0}, {1, 1}}; !slices.Equal(writes, want) {
		t.Fatalf("writes per second = %v, want %v", writes, want)
	}
	reads := PerSecond(outcomes, start, false)
	// A 404 counts only as the API's own "not_found".
	if want := []Second{{3, 2}, {1, 0}}; !slices.Equal(reads, want) {
		t.Fatalf("reads per second = %v, want %v", reads, want)
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	ms := time.Millisecond
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7 * ms}, 99, 7 * ms},
		{"median of 1..100", hundred, 50, 50 * ms},
		{"p99 of 1..100", hundred, 99, 99 * ms},
		{"p100 is the max", hundred, 100, 100 * ms},
		{"median of three", []time.Duration{1 * ms, 2 * ms, 30 * ms}, 50, 2 * ms},
		{"p99 of three is the max", []time.Duration{1 * ms, 2 * ms, 30 * ms}, 99, 30 * ms},
		{"a tiny p is the min", hundred, 0.001, 1 * ms},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestLatenciesAndKinds(t *testing.T) {
	ms := time.Millisecond
	outcomes := []Outcome{
		{Request: Request{Op: OpPut}, Status: 202, Version: ver(1), Latency: 30 * ms},
		{Request: Request{Op: OpPut}, Status: 202, Version: ver(2), Latency: 10 * ms},
		{Request: Request{Op: OpPut}, Status: 202, Version: ver(3), Latency: 20 * ms},
		{Request: Request{Op: OpPut}, Status: 503, Code: "queue_unavailable", Latency: 5 * time.Second},
		{Request: Request{Op: OpPut}, Status: 202, Code: "no_version", Latency: ms},
		{Request: Request{Op: OpDelete}, Failure: FailReset},
		{Request: Request{Op: OpDelete}, Failure: FailClientLimit},
		{Request: Request{Op: OpGet}, Status: 502, Code: "bad_gateway"},
	}
	l := Latencies(outcomes, Outcome.Acknowledged)
	if want := (Latency{Count: 3, P50: 20 * ms, P99: 30 * ms, Max: 30 * ms}); l != want {
		t.Fatalf("Latencies of the acknowledged = %+v, want %+v", l, want)
	}
	kinds := Kinds(outcomes, true)
	want := map[string]int{"503 queue_unavailable": 1, "202 no_version": 1, "transport reset": 1, "client_limit": 1}
	if !maps.Equal(kinds, want) {
		t.Fatalf("write error kinds = %v, want %v", kinds, want)
	}
	if got := Kinds(outcomes, false); !maps.Equal(got, map[string]int{"502 bad_gateway": 1}) {
		t.Fatalf("read error kinds = %v", got)
	}
}

func TestOutcomeClassification(t *testing.T) {
	cases := []struct {
		name                         string
		o                            Outcome
		available, notApplied, error bool
	}{
		{"202 with version", Outcome{Request: Request{Op: OpPut}, Status: 202, Version: ver(1)}, true, false, false},
		{"202 without version", Outcome{Request: Request{Op: OpPut}, Status: 202, Code: "no_version"}, false, false, false},
		{"503", Outcome{Request: Request{Op: OpDelete}, Status: 503}, false, false, true},
		{"400", Outcome{Request: Request{Op: OpPut}, Status: 400, Code: "invalid_json"}, false, true, false},
		{"timeout", Outcome{Request: Request{Op: OpPut}, Failure: FailTimeout}, false, false, true},
		{"not sent", Outcome{Request: Request{Op: OpPut}, Failure: FailClientLimit}, false, true, false},
		{"read 200", Outcome{Request: Request{Op: OpGet}, Status: 200}, true, false, false},
		{"read 200 for another key", Outcome{Request: Request{Op: OpGet}, Status: 200, Code: "wrong_key"}, false, false, false},
		{"read 404 not_found", Outcome{Request: Request{Op: OpGet}, Status: 404, Code: "not_found"}, true, false, false},
		{"read 404 of the proxy", Outcome{Request: Request{Op: OpGet}, Status: 404, Code: "not_json"}, false, false, false},
		{"read 502", Outcome{Request: Request{Op: OpGet}, Status: 502}, false, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.Available(); got != tc.available {
				t.Errorf("Available = %v, want %v", got, tc.available)
			}
			if tc.o.Op.IsWrite() {
				if got := tc.o.NotApplied(); got != tc.notApplied {
					t.Errorf("NotApplied = %v, want %v", got, tc.notApplied)
				}
			}
			if got := tc.o.ServerError(); got != tc.error {
				t.Errorf("ServerError = %v, want %v", got, tc.error)
			}
		})
	}
}
