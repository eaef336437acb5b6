package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/bench"
	"github.com/kvfleet/kvfleet/internal/chaos"
	"github.com/kvfleet/kvfleet/internal/hostinfo"
	"github.com/kvfleet/kvfleet/internal/refsystem"
)

var (
	runStart = time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	taken    = runStart.Add(time.Minute)
)

func cpu(host float64, by map[string]float64) *bench.CPUWindow {
	return &bench.CPUWindow{Seconds: 5, HostBusy: host, Cores: 2, ByService: by, Client: 0.3, DockerProxy: 0.1, Other: 0.05}
}

func step(rate int, got, p99 float64, verdict string, host float64) bench.Phase {
	p := bench.Phase{Name: "step", Loop: "open", TargetRate: rate, Seconds: 3, Verdict: verdict,
		OpResult: bench.OpResult{Requests: uint64(rate * 3), OK: uint64(got * 3), PerSecond: got,
			Latency: bench.Summary{P50MS: p99 / 10, P90MS: p99 / 3, P99MS: p99, MaxMS: p99 * 2}},
		CPU: cpu(host, map[string]float64{"api": 0.7, "nginx": 0.3, "rabbitmq-1": 0.2})}
	return p
}

// fixtures writes one of every input into dir, as one run would.
func fixtures(t *testing.T, dir string) {
	t.Helper()
	closed := func(name string, per float64) *bench.Phase {
		return &bench.Phase{Name: name, Loop: "closed", Connections: 64, Seconds: 5,
			OpResult: bench.OpResult{Requests: 1000, OK: 1000, PerSecond: per, Latency: bench.Summary{P50MS: 8, P99MS: 36, MaxMS: 70}},
			CPU:      cpu(1.95, map[string]float64{"api": 0.7, "nginx": 0.29, "postgres": 0.1}), Limit: "host CPU saturated"}
	}
	lagged := step(700, 700, 90, "pass", 1.5)
	lagged.Name = "PUT at half the sustained rate"
	lagged.Lag = &bench.LagResult{Sampled: 5, Visible: 5, Latency: bench.Summary{P50MS: 15, P90MS: 30, P99MS: 72, MaxMS: 80}, SamplesMS: []float64{12, 15, 18, 30, 72}}
	b := &bench.Result{Schema: bench.Schema, Started: taken, Finished: taken.Add(4 * time.Minute), Mode: "quick", Target: "http://127.0.0.1:8000",
		Method:     []string{"closed loop: 64 connections"},
		Machine:    bench.Machine{Cores: 2, CPUModel: "Test CPU", MemoryBytes: 8 << 30, Kernel: "6.1.0", DockerVersion: "20.10", StorageDriver: "overlay2", CgroupVersion: "2", GoVersion: "go1.26"},
		Conditions: bench.Conditions{APIReplicas: 3, ConsumerReplicas: 2, Database: "postgres"},
		Reference: bench.Reference{Get: closed("reference GET", 9198),
			Broker: &bench.BrokerResult{PublishPerSecond: 15249, DrainPerSecond: 47309, Channels: 4, Window: 256}},
		Fleet: bench.Fleet{
			CachedGet: closed("cached GET", 6587), UncachedGet: closed("uncached GET", 2733), Mixed: closed("mixed 90/10", 3308),
			Writes:  &bench.Writes{Max: closed("PUT", 1504), SustainedPerSecond: 1339, Sustained: &lagged, Half: &lagged},
			Backlog: &bench.BacklogResult{Messages: 20000, PublishPerSecond: 11689, DepthAtPublishEnd: 2913, DrainPerSecond: 15626, AppliedPerSecond: 9597, Drained: true},
			Curves: []bench.Curve{
				{Op: "cached GET", Bound: "p99 <= 100 ms", P99MS: 100, Saturation: 1, Steps: []bench.Phase{
					step(1300, 1300, 9, "pass", 1.0), step(1950, 1949, 20, "pass", 1.4), step(2925, 2700, 160, "p99 160.0 ms > 100 ms", 1.97)}},
				{Op: "PUT", Bound: "p99 <= 100 ms", P99MS: 100, Saturation: 0, Steps: []bench.Phase{lagged, step(1050, 990, 400, "p99 400.0 ms > 100 ms", 1.98)}},
				// Its first step (1200/s) failed, so it stepped down until 300/s passed.
				{Op: "uncached GET", Bound: "p99 <= 100 ms", P99MS: 100, Saturation: 0, Steps: []bench.Phase{
					step(300, 300, 40, "pass", 1.2), step(600, 590, 150, "p99 150.0 ms > 100 ms", 1.9), step(1200, 1000, 400, "p99 400.0 ms > 100 ms", 1.98)}},
			},
		},
		IdleCPU:    cpu(0.2, map[string]float64{"api": 0.01, "rabbitmq-1": 0.016}),
		Memory:     map[string]bench.Memory{"api": {Containers: 3, MaxRSS: 40 << 20, MaxUsage: 46 << 20}, "rabbitmq-1": {Containers: 1, MaxRSS: 300 << 20}},
		IdleMemory: map[string]bench.Memory{"api": {Containers: 3, MaxRSS: 20 << 20}},
	}
	b.Goals = bench.Goals(b)
	if err := bench.WriteJSON(filepath.Join(dir, FileBench), b); err != nil {
		t.Fatal(err)
	}
	scenario := chaos.Result{Name: "redis-master-kill", Description: "SIGKILL of the Redis master", Pass: true,
		Events: []chaos.Event{{At: 0, What: "load started"}, {At: 5, What: "injecting the fault"}, {At: 9, What: "healing"},
			{At: 11, What: "every container ready again (2.0s after the heal)"}, {At: 20, What: "load stopped"}},
		Writes: chaos.Stream{Sent: 4000, Available: 3990, Availability: 0.9975, Errors: map[string]int{"http_503_queue_unavailable": 10},
			PerSecond: []float64{1, 1, 1, 1, 1, 0.95, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, SentPerSecond: []int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		Reads: chaos.Stream{Sent: 4000, Available: 4000, Availability: 1,
			PerSecond: []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, SentPerSecond: []int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		AckLatency:  chaos.Latency{Count: 3990, P50: 3, P99: 47, Max: 108},
		Convergence: chaos.ConvergenceResult{Converged: true, Seconds: 0.3, Keys: 500},
		Checks:      []chaos.Check{{Name: "acknowledged writes lost", Limit: "0", Observed: "0", Pass: true}},
	}
	if err := chaos.WriteJSON(filepath.Join(dir, FileChaos), chaos.Report{Started: taken, Finished: taken.Add(3 * time.Minute), BaseURL: "http://127.0.0.1:8000",
		Schedule: "ci", WriteRate: 200, ReadRate: 200, Keys: 500, DeleteFraction: 0.1, Scenarios: []chaos.Result{scenario}, Pass: true}); err != nil {
		t.Fatal(err)
	}
	autoscale := `{"schema":"kvfleet-autoscale/1","started":"` + taken.Format(time.RFC3339) + `","finished":"` + taken.Add(5*time.Minute).Format(time.RFC3339) + `","mode":"quick","base_url":"http://127.0.0.1:18200","extra":{"ignored":true},
 "settings":{"interval_s":5,"cooldown_s":30,"down_window_s":120,"api_min":3,"api_max":6,"consumer_min":2,"consumer_max":4},
 "phases":[{"name":"idle","start_s":0,"end_s":30,"offered_per_s":0},{"name":"step","start_s":30,"end_s":150,"offered_per_s":2500}],
 "timeline":[{"t_s":0,"api_replicas":3,"consumer_replicas":2,"api_cpu":0.02,"api_in_flight":0,"backlog":0,"offered":0,"ok":0,"failed":0},
  {"t_s":40,"api_replicas":3,"consumer_replicas":2,"api_cpu":1.2,"api_in_flight":60,"backlog":900,"offered":2500,"ok":2400,"failed":3},
  {"t_s":80,"api_replicas":5,"consumer_replicas":3,"api_cpu":1.3,"api_in_flight":20,"backlog":40,"offered":2500,"ok":2500,"failed":0}],
 "decisions":[{"t_s":45,"service":"api","from":3,"to":5,"reason":"cpu above target","signals":"cpu=0.6"}],
 "requests":{"sent":300000,"ok":299990,"failed":10,"errors":{"http_502":10}},
 "checks":[{"name":"scaled up within 60 s","pass":true,"detail":"45 s"}],"pass":true}`
	if err := os.WriteFile(filepath.Join(dir, FileAutoscale), []byte(autoscale), 0o644); err != nil {
		t.Fatal(err)
	}
	e2e, err := ParseTestEvents(strings.NewReader(testEvents))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(filepath.Join(dir, FileE2E), e2e); err != nil {
		t.Fatal(err)
	}
	ref := &refsystem.Result{Schema: refsystem.Schema, Started: taken, Finished: taken, Mode: "quick", Method: []string{"etcd: one member"},
		Systems: []refsystem.System{{Name: "etcd", Version: "etcd Version: 3.4.23", Ops: []refsystem.Op{
			{Name: "put", Kind: "write", Phase: *closed("etcd put", 4321)}, {Name: "range", Kind: "read", Phase: *closed("etcd range", 8765)}}},
			{Name: "redis", Error: "redis-server is not installed"}}}
	if err := refsystem.WriteJSON(filepath.Join(dir, FileReference), ref); err != nil {
		t.Fatal(err)
	}
	m := &hostinfo.Machine{Schema: hostinfo.Schema, Taken: taken, Host: b.Machine, OS: "Debian GNU/Linux 12 (bookworm)", Project: "kvfleet",
		Services: []hostinfo.Service{{Name: "api", Replicas: 3, Image: "kvfleet:local", ImageID: "0123456789ab"}}}
	if err := hostinfo.WriteJSON(filepath.Join(dir, FileMachine), m); err != nil {
		t.Fatal(err)
	}
	run := &RunLog{Schema: RunSchema, Mode: "quick", Started: runStart, Finished: runStart.Add(9 * time.Minute),
		Steps: []Step{{Name: "bench", Command: "bin/kvfleet-bench -quick", Seconds: 240}, {Name: "chaos", Command: "bin/kvfleet-chaos --quick", Seconds: 200, ExitCode: 1}}}
	if err := WriteJSON(filepath.Join(dir, FileRun), run); err != nil {
		t.Fatal(err)
	}
}

const testEvents = `{"Time":"2026-11-26T14:01:00Z","Action":"start","Package":"github.com/kvfleet/kvfleet/internal/e2e"}
{"Time":"2026-11-26T14:01:00Z","Action":"run","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestOriginalCalls"}
{"Time":"2026-11-26T14:01:00Z","Action":"output","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestOriginalCalls","Output":"=== RUN   TestOriginalCalls\n"}
{"Time":"2026-11-26T14:01:01Z","Action":"output","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestOriginalCalls","Output":"    e2e_test.go:99: converged in 17ms\n"}
{"Time":"2026-11-26T14:01:01Z","Action":"pass","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestOriginalCalls","Elapsed":0.42}
{"Time":"2026-11-26T14:01:01Z","Action":"run","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx"}
{"Time":"2026-11-26T14:01:01Z","Action":"run","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx/malformed_JSON"}
{"Time":"2026-11-26T14:01:01Z","Action":"pass","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx/malformed_JSON","Elapsed":0.01}
{"Time":"2026-11-26T14:01:01Z","Action":"run","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx/POST"}
{"Time":"2026-11-26T14:01:01Z","Action":"output","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx/POST","Output":"    e2e_test.go:140: POST / = 200, want 405\n"}
{"Time":"2026-11-26T14:01:01Z","Action":"fail","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx/POST","Elapsed":0.02}
{"Time":"2026-11-26T14:01:01Z","Action":"fail","Package":"github.com/kvfleet/kvfleet/internal/e2e","Test":"TestBadInputThroughNginx","Elapsed":0.05}
{"Time":"2026-11-26T14:01:02Z","Action":"output","Package":"github.com/kvfleet/kvfleet/internal/e2e","Output":"FAIL\n"}
{"Time":"2026-11-26T14:01:02Z","Action":"fail","Package":"github.com/kvfleet/kvfleet/internal/e2e","Elapsed":2.1}
`

func generate(t *testing.T, dir string) (string, *Doc) {
	t.Helper()
	o := Options{Dir: dir, Document: filepath.Join(dir, "report.md"), ImgDir: filepath.Join(dir, "img"), Now: taken.Add(10 * time.Minute)}
	doc, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(o.Document)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw), doc
}

// full is one report generated from every fixture, shared by the tests
// that read it: drawing the charts is the slow part under -race.
var full struct {
	once sync.Once
	dir  string
	md   string
	doc  *Doc
}

func fullReport(t *testing.T) (dir, md string, doc *Doc) {
	t.Helper()
	full.once.Do(func() {
		dir, err := os.MkdirTemp("", "kvfleet-report-test-")
		if err != nil {
			t.Fatal(err)
		}
		fixtures(t, dir)
		full.dir = dir
		full.md, full.doc = generate(t, dir)
	})
	if full.doc == nil {
		t.Fatal("the shared report could not be generated")
	}
	return full.dir, full.md, full.doc
}

func TestMain(m *testing.M) {
	code := m.Run()
	// KVFLEET_REPORT_TEST_KEEP=1 keeps the fixture report to look at its
	// charts.
	if full.dir != "" && os.Getenv("KVFLEET_REPORT_TEST_KEEP") == "" {
		os.RemoveAll(full.dir)
	} else if full.dir != "" {
		println("fixture report kept in", full.dir)
	}
	os.Exit(code)
}

func TestGenerateFillsEverySectionFromTheInputs(t *testing.T) {
	_, md, _ := fullReport(t)
	for _, want := range []string{
		"**quick** run of `make report` that took 9m0s",
		"CPU: 2 cores (Test CPU)", "storage driver overlay2", "Debian GNU/Linux 12", "`kvfleet:local`",
		"| chaos | `bin/kvfleet-chaos --quick` | 200 s | exit status 1 |",
		"## 1. Functional", "NOT every case passed: 4 cases, 2 passed, 2 failed", "POST / = 200, want 405", "converged in 17ms",
		"## 2. Throughput and latency", "| cached GET | 1,949/s | 20.0 ms |", "2925/s: p99 160.0 ms > 100 ms",
		"host CPU saturated 1.97 of 2 cores: api 0.70", "![throughput against offered load](img/throughput.png)",
		"| PUT at half the sustained rate |", "15,626/s",
		"## 3. Against reference systems", "etcd put (loopback)", "4,321", "| PUT accepted (durable in a quorum queue) | 1,504 | etcd put (durable, one member) | 4,321 | 0.35× |",
		"redis was not measured: redis-server is not installed",
		"## 4. Fault tolerance", "### redis-master-kill: pass", "![chaos scenario redis-master-kill](img/chaos-redis-master-kill.png)", "injecting the fault",
		"http_503_queue_unavailable ×10", "| redis-master-kill | pass | 0 | 0 | 99.8 % | 0 s; 1 s with a failure |",
		"## 5. Autoscaling", "| 45 s | api | 3 → 5 | cpu above target | cpu=0.6 |", "300,000 requests sent", "![autoscaling timeline](img/autoscale.png)",
		"## 6. Resource use", "| api | 0.010 | 0.70 |", "| api | 3 | 20 MiB | 40 MiB |",
		"## 7. Limits and what would lift them", "**cached GET**: it served 1,949/s within the bound", "*What would lift it — more cores:*",
		"| uncached GET | 300/s | 40.0 ms | 1.20 of 2 | 600/s: p99 150.0 ms > 100 ms |",
		"**uncached GET**: it served 300/s within the bound (p99 40.0 ms); at 600/s offered it failed (p99 150.0 ms > 100 ms)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, unwanted := range []string{"No end-to-end results", "No benchmark result", "No chaos results", "No autoscaling run", "<no value>", "%!"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("report has %q", unwanted)
		}
	}
}

func TestGenerateWritesReadableCharts(t *testing.T) {
	dir, _, doc := fullReport(t)
	want := []string{"throughput.png", "latency.png", "lag.png", "cpu.png", "memory.png", "reference.png", "autoscale.png", "chaos-redis-master-kill.png"}
	for _, name := range want {
		f, err := os.Open(filepath.Join(dir, "img", name))
		if err != nil {
			t.Errorf("chart %s: %v", name, err)
			continue
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width < 400 || cfg.Height < 250 {
			t.Errorf("chart %s: %v, %dx%d", name, err, cfg.Width, cfg.Height)
		}
	}
	if len(doc.Perf.Charts) != 3 {
		t.Errorf("section 2 shows %d charts, want throughput, latency and lag", len(doc.Perf.Charts))
	}
}

func TestGenerateSaysWhichInputsAreMissing(t *testing.T) {
	dir := t.TempDir()
	md, doc := generate(t, dir)
	for _, want := range []string{
		"No end-to-end results: no e2e.json in " + dir,
		"No benchmark result: no bench.json in " + dir,
		"No chaos results: no chaos.json",
		"No autoscaling run: no autoscale.json",
		"No resource figures: no bench.json",
		"Without the benchmark's result there is nothing to derive limits from",
		"not recorded: no machine.json",
		"no run log",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "img")); len(entries) != 0 {
		t.Errorf("charts drawn without data: %v", entries)
	}
	if len(doc.Missing) != 6 {
		t.Errorf("missing inputs listed: %v", doc.Missing)
	}
}

func TestInputsOlderThanTheRunAreLeftOut(t *testing.T) {
	dir := t.TempDir()
	fixtures(t, dir)
	later := &RunLog{Schema: RunSchema, Mode: "full", Started: taken.Add(time.Hour),
		Steps: []Step{{Name: "bench", ExitCode: 2}, {Name: "autoscale", Skipped: "this checkout has no make autoscale-test"}}}
	if err := WriteJSON(filepath.Join(dir, FileRun), later); err != nil {
		t.Fatal(err)
	}
	md, _ := generate(t, dir)
	for _, want := range []string{
		"No benchmark result: bench.json is from an earlier run (2026-11-26T14:01:00Z)",
		"the bench step: exit status 2",
		"No autoscaling run: autoscale.json is from an earlier run",
		"the autoscale step: skipped: this checkout has no make autoscale-test",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestParseTestEventsKeepsCasesAndTheirLogs(t *testing.T) {
	res, err := ParseTestEvents(strings.NewReader(testEvents))
	if err != nil {
		t.Fatal(err)
	}
	if res.Pass || len(res.Cases) != 4 || res.Package != "github.com/kvfleet/kvfleet/internal/e2e" {
		t.Fatalf("result %+v", res)
	}
	got := map[string]Case{}
	for _, c := range res.Cases {
		got[c.Name] = c
	}
	if c := got["TestOriginalCalls"]; c.Result != "pass" || c.Seconds != 0.42 || len(c.Log) != 1 || c.Log[0] != "e2e_test.go:99: converged in 17ms" {
		t.Errorf("TestOriginalCalls = %+v", c)
	}
	if c := got["TestBadInputThroughNginx/POST"]; c.Result != "fail" || len(c.Log) != 1 {
		t.Errorf("the failing subtest = %+v", c)
	}
	if _, err := ParseTestEvents(strings.NewReader("no such package\n")); err == nil {
		t.Error("plain text was taken for test events")
	}
}

func TestHeadlineBlockIsReplacedOnlyBetweenItsMarkers(t *testing.T) {
	_, _, doc := fullReport(t)
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	before := "# x\n\nintro\n" + HeadlineStart + "\nold figures\n" + HeadlineEnd + "\n\nrest\n"
	if err := os.WriteFile(readme, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateHeadline(readme, doc.Headline); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(readme)
	got := string(raw)
	if strings.Contains(got, "old figures") || !strings.Contains(got, "- cached GET: 1,949/s within p99 ≤ 100 ms") ||
		!strings.Contains(got, "- chaos (ci schedule): 1 of 1 scenarios passed, 0 acknowledged writes lost") ||
		!strings.Contains(got, "- autoscaling (quick schedule): 1 of 1 checks passed; API 3 → up to 5 replicas, consumers 2 → up to 2; 10 of 300,000 requests failed") ||
		!strings.HasPrefix(got, "# x\n\nintro\n") || !strings.HasSuffix(got, HeadlineEnd+"\n\nrest\n") {
		t.Errorf("README after:\n%s", got)
	}
	plain := filepath.Join(dir, "PLAIN.md")
	if err := os.WriteFile(plain, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateHeadline(plain, doc.Headline); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(plain); !bytes.Equal(raw, []byte("no markers\n")) {
		t.Errorf("a README without markers was changed: %q", raw)
	}
}
