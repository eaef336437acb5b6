package alert

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	rulesDir = "../../deploy/prometheus/rules"
	runbooks = "../../docs/runbooks.md"
)

// TestRulesPassPromtool runs `promtool check rules` on every rules file
// and `promtool test rules` on its tests, as Prometheus would load and
// evaluate them.
func TestRulesPassPromtool(t *testing.T) {
	bin := tool(t, "promtool", "prometheus")
	files, err := Files(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rules := range files {
		tests := strings.TrimSuffix(rules, RulesSuffix) + TestsSuffix
		t.Run(filepath.Base(rules), func(t *testing.T) {
			if out, err := exec.Command(bin, "check", "rules", rules).CombinedOutput(); err != nil {
				t.Errorf("promtool check rules %s: %v\n%s", rules, err, out)
			}
			cmd := exec.Command(bin, "test", "rules", filepath.Base(tests))
			cmd.Dir = rulesDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", tests, err, out)
			}
		})
	}
}

// testFile is the part of promtool's test format that says which alerts
// a test expects to fire.
type testFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertIsTested: each rules file has a tests file that loads it
// and makes every one of its alerts fire at least once (a test that only
// expects silence would pass for a rule that can never fire).
func TestEveryAlertIsTested(t *testing.T) {
	rules, err := Load(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string]map[string]bool{}
	for _, r := range rules {
		if fired[r.File] == nil {
			tests := strings.TrimSuffix(r.File, RulesSuffix) + TestsSuffix
			raw, err := os.ReadFile(filepath.Join(rulesDir, tests))
			if err != nil {
				t.Errorf("%s has no tests: %v", r.File, err)
				fired[r.File] = map[string]bool{}
				continue
			}
			var tf testFile
			if err := yaml.Unmarshal(raw, &tf); err != nil {
				t.Fatalf("%s: %v", tests, err)
			}
			if len(tf.RuleFiles) != 1 || tf.RuleFiles[0] != r.File {
				t.Errorf("%s loads %v, want [%s]", tests, tf.RuleFiles, r.File)
			}
			fired[r.File] = map[string]bool{}
			for _, tc := range tf.Tests {
				for _, a := range tc.AlertRuleTest {
					if len(a.ExpAlerts) > 0 {
						fired[r.File][a.Alertname] = true
					}
				}
			}
		}
		if !fired[r.File][r.Name] {
			t.Errorf("%s: no test in %s makes %s fire", r.File, strings.TrimSuffix(r.File, RulesSuffix)+TestsSuffix, r.Name)
		}
	}
}

// TestAlertsSayWhatToDo: every alert has a summary, a description, a
// severity Alertmanager routes on, a component it inhibits by, and a
// runbook that is a heading of docs/runbooks.md.
func TestAlertsSayWhatToDo(t *testing.T) {
	rules, err := Load(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) < 20 {
		t.Fatalf("loaded only %d alerts from %s", len(rules), rulesDir)
	}
	anchors := runbookAnchors(t)
	names := map[string]bool{}
	for _, r := range rules {
		if names[r.Name] {
			t.Errorf("%s: alert %s is defined twice", r.File, r.Name)
		}
		names[r.Name] = true
		if !strings.HasPrefix(r.Name, "Kvfleet") {
			t.Errorf("%s: alert %s does not start with Kvfleet", r.File, r.Name)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: alert %s has no %s annotation", r.File, r.Name, a)
			}
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: alert %s has severity %q, want critical or warning", r.File, r.Name, s)
		}
		if r.Labels["component"] == "" {
			t.Errorf("%s: alert %s has no component label", r.File, r.Name)
		}
		want := "docs/runbooks.md#" + strings.ToLower(r.Name)
		if r.Annotations["runbook"] != want {
			t.Errorf("%s: alert %s has runbook %q, want %q", r.File, r.Name, r.Annotations["runbook"], want)
		}
		if !anchors[strings.ToLower(r.Name)] {
			t.Errorf("%s: docs/runbooks.md has no heading %q for alert %s's runbook", r.File, r.Name, r.Name)
		}
	}
}

var notInAnchor = regexp.MustCompile(`[^\p{L}\p{N} _-]`)

// runbookAnchors returns the anchors GitHub makes of docs/runbooks.md's
// headings: lower case, punctuation dropped, spaces as hyphens.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(runbooks)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors := map[string]bool{}
	inCode := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		heading = notInAnchor.ReplaceAllString(strings.ToLower(heading), "")
		anchors[strings.ReplaceAll(heading, " ", "-")] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(dir); err == nil {
		t.Error("Load of a directory without rules files: no error")
	}
	write("b"+RulesSuffix, `groups:
  - name: g2
    rules:
      - record: job:up:sum
        expr: sum(up)
      - alert: B
        expr: up == 0
        for: 1m
        labels: {severity: warning}
        annotations: {summary: s}
`)
	write("a"+RulesSuffix, "groups:\n  - name: g1\n    rules:\n      - alert: A\n        expr: vector(1)\n")
	write("a"+TestsSuffix, "not: [a rules file")
	rules, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Name != "A" || rules[1].Name != "B" || rules[1].For != "1m" ||
		rules[1].Group != "g2" || rules[1].File != "b"+RulesSuffix || rules[1].Labels["severity"] != "warning" {
		t.Errorf("Load = %+v, want A (a.rules.yml) then B (b.rules.yml, g2, for 1m, severity warning) and no recording rule", rules)
	}
	write("c"+RulesSuffix, "groups: [")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "c"+RulesSuffix) {
		t.Errorf("Load with a malformed file: error %v, want one naming c%s", err, RulesSuffix)
	}
}

// tool returns the named binary, or skips the test outside CI (and fails
// it in CI) when it is missing.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		why := name + " is not installed (Debian package " + pkg + "; scripts/install-test-deps.sh installs it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return path
}

// TestConfigs: Prometheus's configuration (scrape jobs, rule_files,
// alerting) and Alertmanager's (routes, inhibition, receivers) are valid
// for the tools of the versions the stand-ins run.
func TestConfigs(t *testing.T) {
	prom := tool(t, "promtool", "prometheus")
	if out, err := exec.Command(prom, "check", "config", "../../deploy/prometheus/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	am := tool(t, "amtool", "prometheus-alertmanager")
	if out, err := exec.Command(am, "check-config", "../../deploy/alertmanager/alertmanager.yml").CombinedOutput(); err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}
