package chaos

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseOptionsDefaults(t *testing.T) {
	o, err := ParseOptions(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.BaseURL != "http://127.0.0.1:8000" || o.Project != "kvfleet" || o.Schedule != ScheduleFull ||
		!slices.Equal(o.Compose, []string{"docker", "compose"}) || o.WriteRate != 200 || o.ReadRate != 200 || o.EnvFile != "" {
		t.Fatalf("defaults %+v", o)
	}
}

func TestParseOptionsFollowsStartShEnvironment(t *testing.T) {
	o, err := ParseOptions([]string{"-quick"}, env(map[string]string{
		"KVFLEET_PORT": "18100", "KVFLEET_PROJECT": "kvfleet-chaos", "KVFLEET_ENV_FILE": ".env.chaos", "KVFLEET_COMPOSE": "docker-compose",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.BaseURL != "http://127.0.0.1:18100" || o.Project != "kvfleet-chaos" || o.EnvFile != ".env.chaos" ||
		!slices.Equal(o.Compose, []string{"docker-compose"}) || o.Schedule != ScheduleCI {
		t.Fatalf("options %+v", o)
	}
	o, err = ParseOptions([]string{"-url", "http://127.0.0.1:9999", "-scenarios", "api-scale, baseline", "-converge-timeout", "30s"},
		env(map[string]string{"KVFLEET_CHAOS_URL": "http://127.0.0.1:1"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.BaseURL != "http://127.0.0.1:9999" || !slices.Equal(o.Scenarios, []string{"api-scale", "baseline"}) || o.ConvergeTimeout != 30*time.Second {
		t.Fatalf("options %+v", o)
	}
}

func TestParseOptionsRefusesBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"-write-rate", "0"},
		{"-read-rate", "-1"},
		{"-write-rate", "100000"},
		{"-keys", "0"},
		{"-delete-fraction", "2"},
		{"-max-in-flight", "0"},
		{"-converge-timeout", "0s"},
		{"-schedule", "weekly"},
		{"-scenarios", "nope"},
		{"-compose", " "},
		{"-baseline", "-1s"},
		{"stray"},
	} {
		if _, err := ParseOptions(args, env(nil), io.Discard); err == nil {
			t.Errorf("ParseOptions(%q) accepted it", args)
		}
	}
	var out strings.Builder
	if _, err := ParseOptions([]string{"-h"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-schedule") {
		t.Errorf("-h: %v, usage %q", err, out.String())
	}
}

func TestBaselineDuration(t *testing.T) {
	o, err := ParseOptions([]string{"-scenarios", "baseline,api-scale", "-baseline", "10m"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := o.scenarios()
	if err != nil {
		t.Fatal(err)
	}
	if ss[0].Name != "baseline" || ss[0].Before != 10*time.Minute {
		t.Fatalf("baseline runs %v, want 10m", ss[0].Before)
	}
	if ss[1].Before == 10*time.Minute {
		t.Fatal("-baseline changed another scenario")
	}
}
