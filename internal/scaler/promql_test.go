package scaler

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The signal queries, evaluated by Prometheus's own engine (promtool test
// rules) on series shaped like the fleet's: two API replicas and one that
// goes away, RabbitMQ's per-queue series reported by two nodes during a
// leader change, next to the dead-letter queue's, and two consumers.
const promqlSeries = `
  - series: 'process_cpu_seconds_total{job="api",instance="a:9100"}'
    values: '0+2.5x40'
  - series: 'process_cpu_seconds_total{job="api",instance="b:9100"}'
    values: '0+5x40'
  - series: 'process_cpu_seconds_total{job="api",instance="c:9100"}'
    values: '0+7.5x20 stale'
  - series: 'up{job="api",instance="a:9100"}'
    values: '1x40'
  - series: 'up{job="api",instance="b:9100"}'
    values: '1x40'
  - series: 'up{job="api",instance="c:9100"}'
    values: '1x20 stale'
  - series: 'process_cpu_seconds_total{job="consumer",instance="x:9100"}'
    values: '0+50x40'
  - series: 'kvfleet_http_in_flight{job="api",instance="a:9100"}'
    values: '4x40'
  - series: 'kvfleet_http_in_flight{job="api",instance="b:9100"}'
    values: '8x40'
  - series: 'rabbitmq_queue_messages_ready{job="rabbitmq",instance="rabbitmq-2:15692",queue="kvfleet.writes",vhost="/"}'
    values: '0+50x40'
  - series: 'rabbitmq_queue_messages_ready{job="rabbitmq",instance="rabbitmq-3:15692",queue="kvfleet.writes",vhost="/"}'
    values: '_x16 800+50x4 stale'
  - series: 'rabbitmq_queue_messages_ready{job="rabbitmq",instance="rabbitmq-2:15692",queue="kvfleet.writes.dead",vhost="/"}'
    values: '5000x40'
  - series: 'rabbitmq_queue_messages_unacked{job="rabbitmq",instance="rabbitmq-2:15692",queue="kvfleet.writes",vhost="/"}'
    values: '256x40'
  - series: 'kvfleet_consumer_messages_total{job="consumer",instance="x:9100",result="applied"}'
    values: '0+100x40'
  - series: 'kvfleet_consumer_messages_total{job="consumer",instance="y:9100",result="applied"}'
    values: '0+50x40'
`

func TestQueriesOnPrometheusEngine(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		const why = "promtool is not installed (Debian package prometheus; scripts/install-test-deps.sh installs it): the signal queries are not evaluated by Prometheus's engine"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	api, consumer := apiSampler.Queries(), consumerSampler.Queries()
	queries := map[string]string{
		"cpu": api[0], "in_flight": api[1],
		"ready": consumer[0], "unacked": consumer[1], "growth": consumer[2], "completed": consumer[3],
	}
	// At 110 s replica c has been gone for 5 s: only a (0.5 core) and b (1
	// core) count. (Values whose sums are exact in binary: avg adds in
	// whatever order it finds the series.) The queue holds 1,100 ready (rabbitmq-3's stale copy
	// is not added) and 256 unacked, and grows by 10 messages a second;
	// the consumers complete 20 + 10 a second.
	want := map[string]float64{"cpu": 0.75, "in_flight": 6, "ready": 1100, "unacked": 256, "growth": 10, "completed": 30}

	var rules, tests strings.Builder
	rules.WriteString("groups:\n- name: scaler\n  interval: 5s\n  rules:\n")
	tests.WriteString("rule_files: [rules.yml]\nevaluation_interval: 5s\ntests:\n- interval: 5s\n  input_series:" + promqlSeries)
	tests.WriteString("  promql_expr_test:\n")
	for name, q := range queries {
		fmt.Fprintf(&rules, "  - record: scaler:%s\n    expr: '%s'\n", name, q)
		fmt.Fprintf(&tests, "  - expr: 'scaler:%s'\n    eval_time: 110s\n    exp_samples:\n    - labels: 'scaler:%s'\n      value: %g\n", name, name, want[name])
	}
	// ...at 50 s, before c leaves: (0.5 + 1 + 1.5) / 3; at 100 s, while two
	// nodes report the queue (1,000 and 950 ready), the larger, not the sum.
	tests.WriteString("  - expr: '" + api[0] + "'\n    eval_time: 50s\n    exp_samples:\n    - labels: '{}'\n      value: 1\n")
	tests.WriteString("  - expr: '" + consumer[0] + "'\n    eval_time: 100s\n    exp_samples:\n    - labels: '{}'\n      value: 1000\n")
	dir := t.TempDir()
	for file, text := range map[string]string{"rules.yml": rules.String(), "test.yml": tests.String()} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "test", "rules", "test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\nrules:\n%s", err, out, rules.String())
	}
}
