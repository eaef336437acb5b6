package bench

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, env map[string]string, args ...string) (Options, error) {
	t.Helper()
	return ParseOptions(args, func(k string) string { return env[k] }, io.Discard)
}

func TestModeDefaults(t *testing.T) {
	q, err := parse(t, nil, "-quick")
	if err != nil {
		t.Fatal(err)
	}
	if q.Duration != 8*time.Second || q.Warmup != 2*time.Second || q.Idle != 0 || q.Search || q.BacklogMessages != 50000 || q.MaxRun != 8*time.Minute {
		t.Fatalf("quick: %+v", q)
	}
	f, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Duration != 20*time.Second || f.Idle != time.Minute || !f.Search || f.BacklogMessages != 100000 || f.BrokerMessages != 100000 || f.MaxRun != 45*time.Minute {
		t.Fatalf("full: %+v", f)
	}
	if f.BaseURL != "http://127.0.0.1:8000" || f.Project != "kvfleet" || f.Report != "docs/report/bench.json" {
		t.Fatalf("full: %+v", f)
	}
	// Flags given win over the mode.
	o, err := parse(t, map[string]string{"KVFLEET_PORT": "18000", "KVFLEET_PROJECT": "kvfleet-e2e"},
		"-quick", "-duration", "3s", "-idle", "10s", "-search", "-backlog-messages", "500")
	if err != nil {
		t.Fatal(err)
	}
	if o.Duration != 3*time.Second || o.Idle != 10*time.Second || !o.Search || o.BacklogMessages != 500 ||
		o.BaseURL != "http://127.0.0.1:18000" || o.Project != "kvfleet-e2e" {
		t.Fatalf("explicit: %+v", o)
	}
	if o, _ := parse(t, nil, "-search=false"); o.Search {
		t.Fatal("-search=false in full mode still searches")
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://10.1.2.3:8000"},
		{"-url", "http://example.com"},
		{"-conns", "0"},
		{"-duration", "20m"},
		{"-backlog-messages", "5000000"},
		{"-project", ""},
		{"stray"},
	} {
		if _, err := parse(t, nil, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parse(t, nil, "-url", "http://8.8.8.8"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("a remote target: %v, want ErrNotLoopback", err)
	}
	if _, err := parse(t, nil, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestParseEnv(t *testing.T) {
	env, err := parseEnv(strings.NewReader("# written by start.sh\n\nCOMPOSE_PROJECT_NAME=kvfleet\nKVFLEET_RABBITMQ_PASSWORD=\"p=w\"\nexport KVFLEET_DB='postgres'\nnot a line\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env["COMPOSE_PROJECT_NAME"] != "kvfleet" || env["KVFLEET_RABBITMQ_PASSWORD"] != "p=w" || env["KVFLEET_DB"] != "postgres" || len(env) != 3 {
		t.Fatalf("env %v", env)
	}
	if _, err := ReadEnvFile("/nonexistent/.env"); err == nil || !strings.Contains(err.Error(), "start.sh") {
		t.Fatalf("missing env file: %v", err)
	}
}

func TestAMQPURLsEscapeThePassword(t *testing.T) {
	got := amqpURLs("a@b/c:d")
	if strings.Count(got, ",") != 2 || !strings.Contains(got, "amqp://kvfleet:a%40b%2Fc%3Ad@rabbitmq-1:5672/") {
		t.Fatalf("amqpURLs = %q", got)
	}
	if hostOf("amqp://kvfleet:secret@rabbitmq-2:5672/") != "rabbitmq-2:5672" {
		t.Fatal("hostOf leaks or misses the host")
	}
}

func TestReferenceNginxConfig(t *testing.T) {
	conf := refNginxConfig("kvfleet-bench-ref-x:8000")
	for _, want := range []string{"server kvfleet-bench-ref-x:8000", "keepalive 64;", "proxy_http_version 1.1;",
		`proxy_set_header Connection "";`, "access_log off;", "worker_processes 2;", "listen 80;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("reference nginx config lacks %q", want)
		}
	}
	if strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Error("unbalanced braces")
	}
}

func TestValuesHaveTheirSize(t *testing.T) {
	if v := value("tag", 12, 64); len(v) != 64 || !strings.HasPrefix(v, "tag:12:") {
		t.Fatalf("value = %q (%d bytes)", v, len(v))
	}
	if v := value("a-long-tag", 1, 4); v != "a-long-tag:1:" {
		t.Fatalf("a value longer than the size is not cut: %q", v)
	}
}
