// Package alert reads the fleet's Prometheus alerting rules, the
// *.rules.yml files of deploy/prometheus/rules that Prometheus loads
// (rule_files in deploy/prometheus/prometheus.yml). Each rules file has
// its promtool unit tests beside it, in the .test.yml file of the same
// name; this package's tests run them.
package alert

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"go.yaml.in/yaml/v3"
)

// RulesSuffix and TestsSuffix end the names of a rules file and of its
// promtool tests.
const (
	RulesSuffix = ".rules.yml"
	TestsSuffix = ".test.yml"
)

// Rule is one alerting rule.
type Rule struct {
	// File is the rules file's base name; Group the rule group's name.
	File, Group string
	Name        string
	Expr        string
	For         string
	Labels      map[string]string
	Annotations map[string]string
}

// ruleFile is Prometheus's rule file format.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// Files lists the rules files in dir, in name order.
func Files(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"+RulesSuffix))
	if err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("alert: no *%s file in %s", RulesSuffix, dir)
	}
	sort.Strings(files)
	return files, nil
}

// Load reads every alerting rule of the rules files in dir, file by file
// in name order, each in its own order. Recording rules are left out.
func Load(dir string) ([]Rule, error) {
	files, err := Files(dir)
	if err != nil {
		return nil, err
	}
	var rules []Rule
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("alert: %w", err)
		}
		var f ruleFile
		if err := yaml.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("alert: %s: %w", path, err)
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				rules = append(rules, Rule{
					File: filepath.Base(path), Group: g.Name, Name: r.Alert,
					Expr: r.Expr, For: r.For, Labels: r.Labels, Annotations: r.Annotations,
				})
			}
		}
	}
	return rules, nil
}
