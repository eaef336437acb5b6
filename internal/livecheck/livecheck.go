// Package livecheck proves the dashboards and the alert rules against a
// running fleet's Prometheus: it runs every query of every panel over a
// recent window and requires data from each, and checks that Prometheus
// has loaded every alert rule, evaluates it without error and can send
// what fires to an Alertmanager. Its results also feed the pictures of the
// dashboards (internal/chart).
package livecheck

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/alert"
	"github.com/kvfleet/kvfleet/internal/dashboard"
	"github.com/kvfleet/kvfleet/internal/promapi"
)

// Prometheus is what the check asks of the server.
type Prometheus interface {
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]promapi.Series, error)
	Query(ctx context.Context, expr string, t time.Time) ([]promapi.Series, error)
	Rules(ctx context.Context) ([]promapi.RuleGroup, error)
	Alertmanagers(ctx context.Context) ([]string, error)
}

// Window is the time range the panels' queries cover, as Grafana would
// ask for it.
type Window struct {
	Start, End time.Time
	Step       time.Duration
}

// QueryResult is one panel query's answer.
type QueryResult struct {
	Query dashboard.Query
	// Expr is the query as sent, Grafana's variables expanded.
	Expr   string
	Series []promapi.Series
	Err    error
}

// HasData reports whether some series of the answer has a number.
func (q QueryResult) HasData() bool {
	for _, s := range q.Series {
		if s.HasData() {
			return true
		}
	}
	return false
}

// PanelResult is one panel's queries' answers.
type PanelResult struct {
	Panel   dashboard.Panel
	Queries []QueryResult
	// Excused says why the panel may lack data (its Need found no
	// target); empty when it must have data.
	Excused string
}

// Problems lists what is wrong with the panel: a query Prometheus
// rejected (never excused), a query without data (unless excused).
func (p PanelResult) Problems() []string {
	var out []string
	for i, q := range p.Queries {
		ref := string(rune('A' + i))
		switch {
		case q.Err != nil:
			out = append(out, fmt.Sprintf("query %s failed: %v", ref, q.Err))
		case !q.HasData() && p.Excused == "":
			out = append(out, fmt.Sprintf("query %s returned no data: %s", ref, q.Expr))
		}
	}
	return out
}

// HasData reports whether every query of the panel returned data.
func (p PanelResult) HasData() bool {
	for _, q := range p.Queries {
		if q.Err != nil || !q.HasData() {
			return false
		}
	}
	return true
}

// BoardResult is one dashboard's panels' results.
type BoardResult struct {
	Board  dashboard.Board
	Panels []PanelResult
}

// AlertResult is what Prometheus says of one alert rule.
type AlertResult struct {
	Rule alert.Rule
	// Loaded: Prometheus has the rule (by group and name).
	Loaded bool
	// Health and LastError of Prometheus's last evaluation; State is
	// inactive, pending or firing.
	Health, LastError, State string
	// EvalErr is the error of evaluating the expression now, if any;
	// Series how many series it returned (each a firing or pending
	// alert, before "for").
	EvalErr error
	Series  int
}

// Problems lists what is wrong with the alert.
func (a AlertResult) Problems() []string {
	var out []string
	if !a.Loaded {
		out = append(out, "not loaded by Prometheus (rule_files, or the rules mount)")
	} else if a.Health != "ok" {
		out = append(out, fmt.Sprintf("Prometheus's evaluation is %q: %s", a.Health, a.LastError))
	}
	if a.EvalErr != nil {
		out = append(out, fmt.Sprintf("evaluating the expression failed: %v", a.EvalErr))
	}
	return out
}

// Report is the whole check.
type Report struct {
	Window        Window
	Boards        []BoardResult
	Alerts        []AlertResult
	Alertmanagers []string
}

// Check runs every panel query of the boards over the window and checks
// every alert rule.
func Check(ctx context.Context, prom Prometheus, boards []dashboard.Board, rules []alert.Rule, w Window) (Report, error) {
	r := Report{Window: w}
	needs := map[string]string{} // Need.Query -> why excused, "" when present
	for _, b := range boards {
		br := BoardResult{Board: b}
		for _, p := range b.Panels() {
			pr := PanelResult{Panel: p}
			if p.Needs != nil {
				why, seen := needs[p.Needs.Query]
				if !seen {
					got, err := prom.Query(ctx, p.Needs.Query, w.End)
					if err != nil {
						return r, fmt.Errorf("livecheck: %s: %w", p.Needs.Query, err)
					}
					if len(got) == 0 {
						why = p.Needs.Why
					}
					needs[p.Needs.Query] = why
				}
				pr.Excused = why
			}
			for _, q := range p.Queries {
				expr := dashboard.Expand(q.Expr, w.Step)
				series, err := prom.QueryRange(ctx, expr, w.Start, w.End, w.Step)
				if err != nil && ctx.Err() != nil {
					return r, ctx.Err()
				}
				pr.Queries = append(pr.Queries, QueryResult{Query: q, Expr: expr, Series: series, Err: err})
			}
			br.Panels = append(br.Panels, pr)
		}
		r.Boards = append(r.Boards, br)
	}
	var err error
	if r.Alerts, err = checkAlerts(ctx, prom, rules, w.End); err != nil {
		return r, err
	}
	if r.Alertmanagers, err = prom.Alertmanagers(ctx); err != nil {
		return r, fmt.Errorf("livecheck: %w", err)
	}
	return r, nil
}

func checkAlerts(ctx context.Context, prom Prometheus, rules []alert.Rule, now time.Time) ([]AlertResult, error) {
	groups, err := prom.Rules(ctx)
	if err != nil {
		return nil, fmt.Errorf("livecheck: %w", err)
	}
	loaded := map[string]promapi.Rule{}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Type == "alerting" {
				loaded[g.Name+"/"+r.Name] = r
			}
		}
	}
	out := make([]AlertResult, 0, len(rules))
	for _, rule := range rules {
		a := AlertResult{Rule: rule}
		if l, ok := loaded[rule.Group+"/"+rule.Name]; ok {
			a.Loaded, a.Health, a.LastError, a.State = true, l.Health, l.LastError, l.State
		}
		series, err := prom.Query(ctx, rule.Expr, now)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		a.EvalErr, a.Series = err, len(series)
		out = append(out, a)
	}
	return out, nil
}

// Problems lists everything that fails the check, one line each.
func (r Report) Problems() []string {
	var out []string
	for _, b := range r.Boards {
		for _, p := range b.Panels {
			for _, msg := range p.Problems() {
				out = append(out, fmt.Sprintf("%s / %s: %s", b.Board.Title, p.Panel.Title, msg))
			}
		}
	}
	for _, a := range r.Alerts {
		for _, msg := range a.Problems() {
			out = append(out, fmt.Sprintf("alert %s (%s): %s", a.Rule.Name, a.Rule.File, msg))
		}
	}
	if len(r.Alertmanagers) == 0 {
		out = append(out, "Prometheus has no Alertmanager to send alerts to")
	}
	return out
}

// Write prints the report for a person: a line per board and per panel,
// the alerts' states, and every problem.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "window %s to %s UTC, step %s\n\n",
		r.Window.Start.UTC().Format("2006-01-02 15:04:05"), r.Window.End.UTC().Format("15:04:05"), r.Window.Step)
	total, withData, excused := 0, 0, 0
	for _, br := range r.Boards {
		n, d, e := 0, 0, 0
		var lines, whys []string
		for _, p := range br.Panels {
			n++
			series := 0
			for _, q := range p.Queries {
				series += len(q.Series)
			}
			status := "ok      "
			switch {
			case p.HasData():
				d++
			case len(p.Problems()) == 0:
				e++
				status = "excused "
			default:
				status = "FAIL    "
			}
			lines = append(lines, fmt.Sprintf("  %s %s (%d queries, %d series)", status, p.Panel.Title, len(p.Queries), series))
			if status == "excused " && !slices.Contains(whys, p.Excused) {
				whys = append(whys, p.Excused)
			}
		}
		for _, why := range whys {
			lines = append(lines, "  excused because: "+why)
		}
		total, withData, excused = total+n, withData+d, excused+e
		fmt.Fprintf(&b, "%s: %d/%d panels with data", br.Board.Title, d, n)
		if e > 0 {
			fmt.Fprintf(&b, ", %d excused", e)
		}
		b.WriteString("\n" + strings.Join(lines, "\n") + "\n\n")
	}
	fmt.Fprintf(&b, "panels: %d/%d with data, %d excused, %d failed\n", withData, total, excused, total-withData-excused)

	healthy := 0
	states := map[string][]string{}
	for _, a := range r.Alerts {
		if len(a.Problems()) == 0 {
			healthy++
		}
		if a.State == "pending" || a.State == "firing" {
			states[a.State] = append(states[a.State], a.Rule.Name)
		}
	}
	fmt.Fprintf(&b, "alerts: %d/%d loaded, healthy and evaluated", healthy, len(r.Alerts))
	for _, s := range []string{"firing", "pending"} {
		sort.Strings(states[s])
		if len(states[s]) > 0 {
			fmt.Fprintf(&b, "; %s: %s", s, strings.Join(states[s], ", "))
		}
	}
	if len(states) == 0 {
		b.WriteString("; none pending or firing")
	}
	fmt.Fprintf(&b, "\nalertmanagers: %s\n", strings.Join(r.Alertmanagers, ", "))
	if problems := r.Problems(); len(problems) > 0 {
		fmt.Fprintf(&b, "\n%d problems:\n  %s\n", len(problems), strings.Join(problems, "\n  "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ScalerNote says whether the autoscaler's panels were checked and, when
// they were excused, whether a scaler answers at hostURL (run on the host
// by ./monitor-scale.sh, where Prometheus cannot scrape it): an excuse
// must not pass for a scaler that runs.
func (r Report) ScalerNote(ctx context.Context, hostURL string) string {
	excused := false
	for _, b := range r.Boards {
		for _, p := range b.Panels {
			excused = excused || (p.Panel.Needs == dashboard.Scaler && p.Excused != "")
		}
	}
	if !excused {
		return "scaler: scraped by Prometheus; its panels were checked"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hostURL, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return "scaler: one answers on " + hostURL + " but Prometheus has no scaler target: " +
				"its panels stay unproven until the scaler runs as a fleet service"
		}
	}
	return "scaler: not running (no scaler target, nothing answers on " + hostURL + "): its panels are excused"
}
