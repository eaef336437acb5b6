package scaler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeFleet is an Actuator over in-memory replica counts.
type fakeFleet struct {
	mu       sync.Mutex
	count    map[string]int
	scaled   []string
	failWith error
	checkErr error
	psErr    error
}

func (f *fakeFleet) Check(context.Context) error { return f.checkErr }

func (f *fakeFleet) Replicas(_ context.Context, service string) ([]Replica, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.psErr != nil {
		return nil, f.psErr
	}
	reps := make([]Replica, f.count[service])
	for i := range reps {
		reps[i] = Replica{Number: i + 1, Healthy: true}
	}
	return reps, nil
}

func (f *fakeFleet) Scale(_ context.Context, service string, current []Replica, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scaled = append(f.scaled, service+":"+strconv.Itoa(len(current))+"→"+strconv.Itoa(n))
	if f.failWith != nil {
		return f.failWith
	}
	f.count[service] = n
	return nil
}

// switchable is a Querier whose answers the test changes between steps.
type switchable struct {
	mu sync.Mutex
	q  Querier
}

func (s *switchable) set(q Querier) { s.mu.Lock(); s.q = q; s.mu.Unlock() }
func (s *switchable) Query(ctx context.Context, q string) ([]Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.Query(ctx, q)
}

type harness struct {
	s     *Scaler
	fleet *fakeFleet
	prom  *switchable
	reg   *prometheus.Registry
	log   *bytes.Buffer
	now   time.Time
}

var (
	busyAPI   = answers{"process_cpu", "1.0", "in_flight", "4", "_ready", "0", "_unacked", "0"}
	idleFleet = answers{"process_cpu", "0.01", "in_flight", "0", "_ready", "0", "_unacked", "0"}
	promDown  = answers{"", "down"}
)

func newHarness(t *testing.T, dryRun bool) *harness {
	t.Helper()
	h := &harness{fleet: &fakeFleet{count: map[string]int{"api": 3, "consumer": 2}}, prom: &switchable{q: idleFleet},
		reg: prometheus.NewRegistry(), log: &bytes.Buffer{}, now: t0}
	services := []Service{
		{Name: "api", Policy: apiPolicy, Sampler: apiSampler},
		{Name: "consumer", Policy: Policy{Min: 2, Max: 6, Tolerance: 0.1, DownWindow: 5 * time.Minute, Cooldown: 30 * time.Second}, Sampler: consumerSampler},
	}
	h.s = New(Settings{Services: services, Prometheus: h.prom, Fleet: h.fleet, DryRun: dryRun, Interval: interval,
		Now: func() time.Time { return h.now }, Logger: telemetry.NewLogger(h.log, 0, "scaler")}, h.reg)
	return h
}

func (h *harness) step(t *testing.T) error {
	t.Helper()
	h.log.Reset()
	err := h.s.Step(context.Background())
	h.now = h.now.Add(interval)
	return err
}

// lines decodes the log lines of the last step.
func (h *harness) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func (h *harness) decisions(service, direction string, reason Reason) float64 {
	return testutil.ToFloat64(h.s.metrics.decisions.WithLabelValues(service, direction, string(reason)))
}

func TestStepScalesAndLogsEachDecisionOnOneLine(t *testing.T) {
	h := newHarness(t, false)
	h.prom.set(busyAPI) // 1 core per replica against 0.5: twice the API
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.fleet.scaled, " "); got != "api:3→6" {
		t.Fatalf("scaled %q, want api 3→6", got)
	}
	lines := h.lines(t)
	if len(lines) != 3 { // api decision, api action, consumer decision
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), h.log)
	}
	d := lines[0]
	for key, want := range map[string]any{"msg": "scale up", "scaling": "api", "change": "3→6", "current": 3.0, "desired": 6.0,
		"reason": "metrics", "signals": "cpu=1/0.5 in_flight=4/10"} {
		if d[key] != want {
			t.Errorf("decision line %s = %v, want %v (line %v)", key, d[key], want, d)
		}
	}
	if _, ok := d["time"]; !ok {
		t.Error("decision line without time")
	}
	if lines[1]["msg"] != "scaled" || lines[2]["scaling"] != "consumer" || lines[2]["reason"] != "at_min" {
		t.Errorf("lines %v", lines[1:])
	}
	m := h.s.metrics
	if testutil.ToFloat64(m.desired.WithLabelValues("api")) != 6 || testutil.ToFloat64(m.current.WithLabelValues("api")) != 3 ||
		h.decisions("api", "up", ReasonMetrics) != 1 || h.decisions("consumer", "none", ReasonAtMin) != 1 ||
		testutil.ToFloat64(m.prometheusUp) != 1 || testutil.ToFloat64(m.actions.WithLabelValues("api", "ok")) != 1 ||
		testutil.ToFloat64(m.signal.WithLabelValues("api", "cpu")) != 1 || testutil.ToFloat64(m.maxReplicas.WithLabelValues("api")) != 8 {
		t.Error("metrics do not show the decision")
	}
	// The next interval sees six replicas: within the band, nothing to do.
	h.prom.set(answers{"process_cpu", "0.5", "in_flight", "2", "_ready", "0", "_unacked", "0"})
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	if len(h.fleet.scaled) != 1 || h.lines(t)[0]["reason"] != "tolerance" {
		t.Errorf("second step: scaled %v, log %s", h.fleet.scaled, h.log)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	h := newHarness(t, true)
	h.prom.set(busyAPI)
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	if len(h.fleet.scaled) != 0 {
		t.Fatalf("dry run scaled %v", h.fleet.scaled)
	}
	if l := h.lines(t)[0]; l["msg"] != "scale up" || l["dry_run"] != true {
		t.Errorf("line %v", l)
	}
}

// A Prometheus outage while running holds every size and says so, in the
// log and in kvfleet_scaler_prometheus_up.
func TestPrometheusOutageHoldsAndSaysSo(t *testing.T) {
	h := newHarness(t, false)
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	h.prom.set(promDown)
	for range 3 {
		if err := h.step(t); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.fleet.scaled) != 0 {
		t.Fatalf("scaled %v during the outage", h.fleet.scaled)
	}
	if testutil.ToFloat64(h.s.metrics.prometheusUp) != 0 || h.decisions("api", "none", ReasonPrometheusDown) != 3 ||
		h.decisions("consumer", "none", ReasonPrometheusDown) != 3 {
		t.Error("metrics do not show the outage")
	}
	l := h.lines(t)[0]
	if l["level"] != "WARN" || l["reason"] != "prometheus_down" || !strings.Contains(l["detail"].(string), "connection refused") {
		t.Errorf("line %v", l)
	}
	h.prom.set(idleFleet)
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(h.s.metrics.prometheusUp) != 1 {
		t.Error("prometheus_up not back to 1")
	}
}

func TestFailedChangeIsReportedAndCounted(t *testing.T) {
	h := newHarness(t, false)
	h.prom.set(busyAPI)
	h.fleet.failWith = errors.New("compose: no such service")
	if err := h.step(t); !errors.Is(err, ErrActionFailed) {
		t.Fatalf("err = %v, want ErrActionFailed", err)
	}
	if testutil.ToFloat64(h.s.metrics.actions.WithLabelValues("api", "error")) != 1 {
		t.Error("failure not counted")
	}
	if l := h.lines(t)[1]; l["level"] != "ERROR" || !strings.Contains(l["err"].(string), "no such service") {
		t.Errorf("line %v", l)
	}
}

func TestReplicasUnknownHolds(t *testing.T) {
	h := newHarness(t, false)
	h.fleet.psErr = errors.New("Cannot connect to the Docker daemon")
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	if h.decisions("api", "none", ReasonReplicasUnknown) != 1 || len(h.fleet.scaled) != 0 {
		t.Error("not held")
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		dryRun  bool
		prom    Querier
		count   map[string]int
		fleet   error
		wantErr string
	}{
		{name: "ready", prom: idleFleet, count: map[string]int{"api": 3, "consumer": 2}},
		{name: "Prometheus unreachable", prom: promDown, count: map[string]int{"api": 3, "consumer": 2}, wantErr: "KVFLEET_SCALER_PROMETHEUS_URL"},
		{name: "service missing", prom: idleFleet, count: map[string]int{"api": 3}, wantErr: `service "consumer" has no running replicas`},
		{name: "compose broken", prom: idleFleet, count: map[string]int{"api": 3, "consumer": 2}, fleet: errors.New("compose broken"), wantErr: "compose broken"},
		{name: "dry run needs no compose", dryRun: true, prom: idleFleet, count: map[string]int{"api": 3, "consumer": 2}, fleet: errors.New("compose broken")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.dryRun)
			h.prom.set(tt.prom)
			h.fleet.count, h.fleet.checkErr = tt.count, tt.fleet
			err := h.s.Check(context.Background())
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	h := newHarness(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.s.Run(ctx); close(done) }()
	cancel()
	<-done
	if h.decisions("api", "none", ReasonAtMin) < 1 {
		t.Error("Run did not decide at once")
	}
}

// recorder is an Observer that keeps what it hears.
type recorder struct {
	decided []string
	scaled  []string
}

func (r *recorder) Decided(service string, d Decision) {
	r.decided = append(r.decided, service+":"+string(d.Reason))
}

func (r *recorder) Scaled(service string, d Decision, _ time.Time, err error) {
	r.scaled = append(r.scaled, fmt.Sprintf("%s:%d→%d err=%v", service, d.Current, d.Desired, err))
}

// The Observer hears every decision, holds included, and every change with
// its result, failed ones included.
func TestObserverHearsDecisionsAndChanges(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{}
	h.s.Observer = rec
	h.prom.set(busyAPI)
	if err := h.step(t); err != nil {
		t.Fatal(err)
	}
	h.fleet.failWith = errors.New("compose failed")
	h.prom.set(answers{"process_cpu", "0.01", "in_flight", "0", "_ready", "5000", "_unacked", "0"})
	if err := h.step(t); !errors.Is(err, ErrActionFailed) {
		t.Fatalf("step with a failing fleet: %v", err)
	}
	if got, want := strings.Join(rec.decided, " "), "api:metrics consumer:at_min api:stabilizing consumer:metrics"; got != want {
		t.Errorf("decided %q, want %q", got, want)
	}
	if got, want := strings.Join(rec.scaled, " "), "api:3→6 err=<nil> consumer:2→6 err=compose failed"; got != want {
		t.Errorf("scaled %q, want %q", got, want)
	}
}
