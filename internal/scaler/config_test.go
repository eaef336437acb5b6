package scaler

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(pairs ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(k string) string { return m[k] }
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		if data, ok := m[path]; ok {
			return []byte(data), nil
		}
		return nil, fs.ErrNotExist
	}
}

var noFiles = files(nil)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(nil, env(), noFiles)
	if err != nil {
		t.Fatal(err)
	}
	if c.PrometheusURL != "http://127.0.0.1:9090" || c.Project != "kvfleet" || c.EnvFile != ".env" ||
		strings.Join(c.Compose, " ") != "docker compose" || c.Queue != "kvfleet.writes" {
		t.Errorf("fleet settings: %+v", c)
	}
	api, consumer := c.Policy("api"), c.Policy("consumer")
	want := Policy{Min: 3, Max: 8, Tolerance: 0.1, DownWindow: 5 * time.Minute, Cooldown: 30 * time.Second}
	if api != want {
		t.Errorf("api policy %+v, want %+v", api, want)
	}
	if consumer.Min != 2 || consumer.Max != 6 {
		t.Errorf("consumer policy %+v, want 2..6", consumer)
	}
	if c.Interval != 5*time.Second || c.SignalWindow != 20*time.Second || c.DryRun || c.Once {
		t.Errorf("timings: %+v", c)
	}
}

// A flag beats the environment, which beats the env file, which beats
// the default; the env file is the one KVFLEET_ENV_FILE names.
func TestLoadConfigPrecedence(t *testing.T) {
	envFile := `# Written by start.sh
KVFLEET_REDIS_PASSWORD=s3cr3t-never-printed
KVFLEET_SCALER_API_MAX=7
export KVFLEET_SCALER_COOLDOWN="10s"
KVFLEET_SCALER_CONSUMER_MAX='5'
KVFLEET_PROMETHEUS_PORT=19091
`
	c, err := LoadConfig([]string{"--api-max", "5", "--dry-run"},
		env("KVFLEET_ENV_FILE", ".env.chaos", "KVFLEET_SCALER_API_MAX", "6", "KVFLEET_SCALER_CONSUMER_MAX", "4"),
		files(map[string]string{".env.chaos": envFile}))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIMax != 5 || c.ConsumerMax != 4 || c.Cooldown != 10*time.Second || !c.DryRun {
		t.Errorf("api max %d (want the flag's 5), consumer max %d (want the environment's 4), cooldown %s (want the file's 10s), dry run %v",
			c.APIMax, c.ConsumerMax, c.Cooldown, c.DryRun)
	}
	if c.PrometheusURL != "http://127.0.0.1:19091" {
		t.Errorf("prometheus URL %s, want the port of KVFLEET_PROMETHEUS_PORT", c.PrometheusURL)
	}
	printed := fmt.Sprint(slog.AnyValue(c).Resolve())
	if strings.Contains(printed, "s3cr3t") || !strings.Contains(printed, "KVFLEET_SCALER_API_MAX=5") {
		t.Errorf("printed configuration: %s", printed)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   func(string) string
		want  []string // in the error
		usage bool
	}{
		{name: "min above max", args: []string{"--api-min", "9"}, want: []string{"KVFLEET_SCALER_API_MIN/MAX", "min replicas 9 is above max replicas 8"}},
		{name: "consumer min zero", env: env("KVFLEET_SCALER_CONSUMER_MIN", "0"), want: []string{"KVFLEET_SCALER_CONSUMER_MIN/MAX", "at least 1"}},
		{name: "bad duration names the variable", env: env("KVFLEET_SCALER_INTERVAL", "5"), want: []string{"KVFLEET_SCALER_INTERVAL", `"5" is not a duration`}},
		{name: "bad flag value names the flag", args: []string{"--api-max", "many"}, want: []string{"--api-max", `"many" is not an integer`}},
		{name: "two errors at once", env: env("KVFLEET_SCALER_TOLERANCE", "1.5", "KVFLEET_SCALER_API_CPU_TARGET", "0"), want: []string{"KVFLEET_SCALER_TOLERANCE", "KVFLEET_SCALER_API_CPU_TARGET"}},
		{name: "bad Prometheus URL", args: []string{"--prometheus-url", "localhost:9090"}, want: []string{"KVFLEET_SCALER_PROMETHEUS_URL"}},
		{name: "signal window below two scrapes", args: []string{"--signal-window", "5s"}, want: []string{"KVFLEET_SCALER_SIGNAL_WINDOW"}},
		{name: "unknown flag", args: []string{"--bogus"}, want: []string{"bogus"}, usage: true},
		{name: "positional argument", args: []string{"api"}, want: []string{`unexpected argument "api"`}, usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := tt.env
			if getenv == nil {
				getenv = env()
			}
			_, err := LoadConfig(tt.args, getenv, noFiles)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var ue *UsageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error %v, want %v", errors.As(err, &ue), tt.usage)
			}
			if tt.usage && !strings.Contains(ue.Usage, "--api-min int") {
				t.Errorf("usage text lacks the flags:\n%s", ue.Usage)
			}
		})
	}
}

func TestLoadConfigHelp(t *testing.T) {
	_, err := LoadConfig([]string{"--help"}, env(), noFiles)
	var ue *UsageError
	if !errors.Is(err, flag.ErrHelp) || !errors.As(err, &ue) {
		t.Fatalf("err = %v, want flag.ErrHelp in a UsageError", err)
	}
	for _, w := range []string{"--dry-run", "--once", "KVFLEET_SCALER_DOWN_WINDOW, default 5m", "HPA"} {
		if !strings.Contains(ue.Usage, w) {
			t.Errorf("usage lacks %q", w)
		}
	}
}
