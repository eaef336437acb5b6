package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// sample is a result as a run makes it, for the schema and table tests.
func sample() *Result {
	get := &Phase{Name: "cached GET", Loop: "closed", Connections: 64, Seconds: 8,
		OpResult: OpResult{Requests: 20000, OK: 20000, PerSecond: 2500, CachedFraction: 1,
			Latency: Summary{Count: 20000, MeanMS: 25.6, P50MS: 20, P99MS: 90, MaxMS: 300}},
		CPU: &CPUWindow{Seconds: 8, HostBusy: 1.95, Cores: 2, ByService: map[string]float64{"api": 0.8, "nginx": 0.4, "redis-master": 0.2}, Fleet: 1.4, Client: 0.3, DockerProxy: 0.2}}
	get.Limit = Limit(get)
	half := &Phase{Name: "cached GET at half rate", Loop: "open", TargetRate: 1250, Seconds: 8,
		OpResult: OpResult{Requests: 10000, OK: 10000, PerSecond: 1250, Latency: Summary{P99MS: 15}}}
	ref := &Phase{Name: "reference GET", Loop: "closed", Connections: 64, OpResult: OpResult{PerSecond: 4000, Latency: Summary{P50MS: 12}}}
	refHalf := &Phase{Name: "reference GET at half rate", Loop: "open", TargetRate: 2000, OpResult: OpResult{PerSecond: 2000, Latency: Summary{P99MS: 5}}}
	putMax := &Phase{Name: "PUT", Loop: "closed", Connections: 64, OpResult: OpResult{PerSecond: 900, Requests: 7200, OK: 7200},
		Queue: &QueueTrend{Source: "amqp", Samples: 40, End: 1600, Max: 1600, GrowthPerSecond: 200, Growing: true}}
	putMax.Limit = Limit(putMax)
	step := Phase{Name: "PUT step 630/s", Loop: "open", TargetRate: 630, OpResult: OpResult{PerSecond: 630}, Verdict: "pass",
		Queue: &QueueTrend{Samples: 40}, Lag: &LagResult{Sampled: 50, Visible: 50, Latency: Summary{P99MS: 80}}}
	putHalf := &Phase{Name: "PUT at half the sustained rate", Loop: "open", TargetRate: 315, OpResult: OpResult{PerSecond: 315},
		Lag: &LagResult{Sampled: 25, Visible: 25, Latency: Summary{P50MS: 30, P99MS: 60}}}
	r := &Result{
		Schema: Schema, Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Finished: time.Date(2025, 1, 2, 3, 7, 5, 0, time.UTC),
		Mode: "quick", Target: "http://127.0.0.1:8000", Project: "kvfleet", Method: []string{"closed loop"},
		Machine:    Machine{Cores: 2, MemoryBytes: 24 << 30, Kernel: "6.1", StorageDriver: "overlay2", CgroupVersion: "1"},
		Conditions: Conditions{APIReplicas: 3, ConsumerReplicas: 2, Database: "postgres"},
		Reference:  Reference{Get: ref, GetHalf: refHalf, Broker: &BrokerResult{Queue: "kvfleet.bench.x", Messages: 20000, PublishPerSecond: 9000, DrainPerSecond: 15000}},
		Fleet: Fleet{CachedGet: get, CachedGetHalf: half,
			Writes:  &Writes{Max: putMax, AppliedAtMax: 700, Steps: []Phase{step}, SustainedPerSecond: 630, Half: putHalf},
			Backlog: &BacklogResult{Messages: 20000, DrainPerSecond: 1500, DepthAtPublishEnd: 15000, Drained: true, Limit: "host CPU"}},
		IdleCPU: &CPUWindow{Seconds: 60, Fleet: 0.043, ByService: map[string]float64{"rabbitmq-1": 0.02}},
		Memory:  map[string]Memory{"api": {Containers: 3, MaxRSS: 40 * mib}, "consumer": {Containers: 2, MaxRSS: 70 * mib}},
	}
	r.Fleet.Writes.Sustained = &r.Fleet.Writes.Steps[0]
	r.Ratios = Ratios(r)
	r.Goals = Goals(r)
	return r
}

func TestResultRoundTrip(t *testing.T) {
	r := sample()
	path := filepath.Join(t.TempDir(), "report", "bench.json")
	if err := WriteJSON(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip changed the result:\n got %+v\nwant %+v", got, r)
	}
	raw, _ := os.ReadFile(path)
	bad := strings.Replace(string(raw), Schema, "kvfleet-bench/0", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(path); err == nil {
		t.Fatal("ReadJSON accepted another schema")
	}
}

// TestSchemaNames pins the names the report reads: renaming one is a
// schema change (bump Schema).
func TestSchemaNames(t *testing.T) {
	raw, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	lookup := func(path string) (any, bool) {
		var cur any = doc
		for part := range strings.SplitSeq(path, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[part]; !ok {
				return nil, false
			}
		}
		return cur, true
	}
	for _, path := range []string{
		"schema", "started", "finished", "mode", "target", "project", "method",
		"machine.cores", "machine.memory_bytes", "machine.kernel", "machine.docker_storage_driver", "machine.cgroup_version",
		"conditions.load_avg_before", "conditions.api_replicas", "conditions.consumer_replicas",
		"reference.get.per_second", "reference.get.latency.p50_ms", "reference.get.latency.p99_ms", "reference.get.latency.max_ms",
		"reference.get_half.target_rate", "reference.broker.publish_per_second", "reference.broker.drain_per_second",
		"fleet.cached_get.per_second", "fleet.cached_get.errors", "fleet.cached_get.cpu.host_busy_cores", "fleet.cached_get.cpu.by_service.api",
		"fleet.cached_get.limit", "fleet.cached_get_half.latency.p99_ms",
		"fleet.writes.max.queue.growth_per_second", "fleet.writes.applied_per_second_at_max", "fleet.writes.sustained_per_second",
		"fleet.writes.half.write_visible_lag.latency.p99_ms", "fleet.backlog.drain_per_second",
		"ratios", "goals", "idle_cpu.fleet_cores", "memory.api.max_rss_bytes",
	} {
		if _, ok := lookup(path); !ok {
			t.Errorf("the JSON has no %s", path)
		}
	}
}

func TestRatios(t *testing.T) {
	got := Ratios(sample())
	want := map[string]float64{
		"cached GET / reference GET":                                       0.625,
		"cached GET p50 / reference p50 (closed loop)":                     1.667,
		"cached GET p99 / reference p99 (open loop, each at half its max)": 3,
		"sustained PUT (accepted and applied) / broker confirmed publish":  0.07,
		"PUT accepted at most / broker confirmed publish":                  0.1,
		"backlog drain by the consumers / broker drain":                    0.1,
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
		if w, ok := want[r.Name]; !ok || r.Value != w {
			t.Errorf("%s = %v, want %v", r.Name, r.Value, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("ratios %v; uncached and mixed are not measured in the sample and must not appear", names)
	}
	if len(Ratios(&Result{})) != 0 {
		t.Error("ratios of an empty result")
	}
}

func TestGoals(t *testing.T) {
	goals := Goals(sample())
	met := map[string]string{}
	for _, g := range goals {
		switch {
		case g.Met == nil:
			met[g.Name] = "-"
		case *g.Met:
			met[g.Name] = "yes"
		default:
			met[g.Name] = "no"
		}
	}
	want := map[string]string{
		"idle fleet CPU":                         "yes", // 4.3 % of a core
		"cached GET vs reference ceiling":        "yes", // 0.625x
		"cached GET throughput":                  "no",  // 2,500 < 5,000
		"cached GET p99 at half that rate":       "yes", // 15 ms
		"sustained writes, accepted and applied": "no",
		"write -> visible p99 at half that rate": "yes",
		"backlog drain":                          "no",
		"api RSS under load":                     "yes",
		"consumer RSS under load":                "no",
	}
	if !reflect.DeepEqual(met, want) {
		t.Fatalf("goals met: %v\nwant %v", met, want)
	}
	for _, g := range goals {
		if g.Name == "cached GET throughput" && !strings.HasPrefix(g.Limit, "host CPU saturated (1.95 of 2 cores): api 0.80, nginx 0.40, bench client 0.30") {
			t.Errorf("limit of an unmet goal: %q", g.Limit)
		}
		if g.Met != nil && *g.Met && g.Limit != "" {
			t.Errorf("%s is met but names a limit %q", g.Name, g.Limit)
		}
	}
	empty := Goals(&Result{})
	for _, g := range empty {
		if g.Met != nil {
			t.Errorf("%s judged without a measurement", g.Name)
		}
	}
}

func TestLimit(t *testing.T) {
	r := sample()
	if l := r.Fleet.Writes.Max.Limit; l != "consumers: the write queue grew by 200/s" {
		t.Errorf("PUT limit %q", l)
	}
	p := &Phase{Loop: "closed", Connections: 64, OpResult: OpResult{Latency: Summary{MeanMS: 32}},
		CPU: &CPUWindow{HostBusy: 1.2, Cores: 2, ByService: map[string]float64{"api": 0.5}}}
	if l := Limit(p); !strings.HasPrefix(l, "latency-bound: 64 connections / 32.00 ms mean = 2000/s; host CPU 1.20 of 2 cores: api 0.50") {
		t.Errorf("latency-bound limit %q", l)
	}
	late := &Phase{Loop: "open", OpResult: OpResult{Latency: Summary{P99MS: 190}},
		StartDelay: &Summary{P99MS: 150}, Service: &Summary{P99MS: 40}}
	if l := Limit(late); l != "the tail is scheduling, not service: requests started up to 150.0 ms late at p99 (service p99 40.0 ms)" {
		t.Errorf("scheduling limit %q", l)
	}
	behind := &Phase{Loop: "open", Workers: 256, QueuedForWorker: 500, OpResult: OpResult{Requests: 10000, Latency: Summary{P99MS: 1266}},
		StartDelay: &Summary{P99MS: 1040}, Service: &Summary{P50MS: 700, P99MS: 495}}
	if l := Limit(behind); !strings.HasPrefix(l, "the target fell behind: 500 requests found all 256 workers busy") {
		t.Errorf("worker exhaustion limit %q", l)
	}
	late.StartDelay.P99MS = 5
	if l := Limit(late); l != "" {
		t.Errorf("an open loop that started on time and was not saturated: %q", l)
	}
	e := &Phase{Loop: "open", OpResult: OpResult{Requests: 100, Errors: 50, ErrorKinds: map[string]uint64{"timeout": 30, "http_502": 20}}}
	if l := Limit(e); l != "errors: timeout x30, http_502 x20" {
		t.Errorf("error limit %q", l)
	}
}

func TestSummaryTable(t *testing.T) {
	var out strings.Builder
	WriteSummary(&out, sample())
	text := out.String()
	for _, want := range []string{"(a) REFERENCE", "(b) FLEET", "(c) RATIOS", "GOALS", "WHAT LIMITED EACH PHASE",
		"cached GET / reference GET", "0.62x", "broker confirmed publish", "PUT sustained, accepted and applied", "630",
		"WRITE -> VISIBLE LAG", "host CPU saturated"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	lines := strings.Split(text, "\n")
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "cached GET throughput") && strings.Contains(l, "NO") }) {
		t.Errorf("the unmet goal is not marked NO:\n%s", text)
	}
}

// TestIdleBreakdown: an idle fleet over the goal is explained by what the
// programs started during the window (healthchecks) cost, their rate, and
// the busiest services, in the goal and in the table.
func TestIdleBreakdown(t *testing.T) {
	r := sample()
	r.IdleCPU = &CPUWindow{Seconds: 60, Fleet: 0.215, Other: 0.17,
		ByService:        map[string]float64{"rabbitmq-1": 0.035, "redis-master": 0.014, "api": 0.013},
		StartedProcesses: map[string]float64{"rabbitmq-1": 0.02, "redis-master": 0.01},
		Healthchecks:     &Healthchecks{Containers: 21, PerSecond: 1.15},
		HostProcesses:    map[string]float64{"containerd-shim": 0.08}}
	r.Goals = Goals(r)
	want := "programs started during the window 0.030 of the fleet's 0.215 cores (Docker runs 1.15 exec healthchecks/s in 21 containers); busiest: other 0.17, rabbitmq-1 0.035, redis-master 0.014"
	for _, g := range r.Goals {
		if g.Name == "idle fleet CPU" {
			if g.Met == nil || *g.Met || g.Limit != want {
				t.Fatalf("idle goal: met %v, limit %q\nwant limit %q", g.Met, g.Limit, want)
			}
		}
	}
	var out strings.Builder
	WriteSummary(&out, r)
	for _, line := range []string{
		"of which programs started during the window (healthchecks, forks): rabbitmq-1 0.020, redis-master 0.010",
		"idle: " + want,
		"idle host processes outside the containers (cores): containerd-shim 0.080",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("summary lacks %q:\n%s", line, out.String())
		}
	}
	if got := IdleBreakdown(&CPUWindow{Fleet: 0.05, ByService: map[string]float64{"api": 0.05}}); got != "busiest: api 0.050" {
		t.Errorf("without process figures: %q", got)
	}
}
