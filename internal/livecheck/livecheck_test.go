package livecheck

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/alert"
	"github.com/kvfleet/kvfleet/internal/dashboard"
	"github.com/kvfleet/kvfleet/internal/promapi"
)

// fakePrometheus answers queries from a table; an expression it does not
// know has no data; "bad(" is rejected.
type fakePrometheus struct {
	data          map[string][]promapi.Series
	groups        []promapi.RuleGroup
	alertmanagers []string
	asked         []string
}

var errParse = errors.New("bad_data: parse error")

func (f *fakePrometheus) QueryRange(_ context.Context, expr string, _, _ time.Time, _ time.Duration) ([]promapi.Series, error) {
	f.asked = append(f.asked, expr)
	if strings.Contains(expr, "bad(") {
		return nil, errParse
	}
	return f.data[expr], nil
}

func (f *fakePrometheus) Query(ctx context.Context, expr string, t time.Time) ([]promapi.Series, error) {
	return f.QueryRange(ctx, expr, t, t, 0)
}

func (f *fakePrometheus) Rules(context.Context) ([]promapi.RuleGroup, error) { return f.groups, nil }

func (f *fakePrometheus) Alertmanagers(context.Context) ([]string, error) {
	return f.alertmanagers, nil
}

var t0 = time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)

func series(instance string, values ...float64) promapi.Series {
	s := promapi.Series{Labels: map[string]string{"instance": instance}}
	for i, v := range values {
		s.Points = append(s.Points, promapi.Point{T: t0.Add(time.Duration(i) * 15 * time.Second), V: v})
	}
	return s
}

var (
	absentSource  = &dashboard.Need{Query: `up{job="absent"}`, Why: "the absent source is not running"}
	presentSource = &dashboard.Need{Query: `up{job="present"}`, Why: "never used: it runs"}
)

func testBoard() dashboard.Board {
	return dashboard.Board{UID: "b", Title: "board", Rows: []dashboard.Row{{Title: "row", Panels: []dashboard.Panel{
		{Title: "with data", Unit: "short", Width: 12, Height: 8, Queries: []dashboard.Query{
			{Expr: "rate(a[$__rate_interval])", Legend: "{{instance}}"}}},
		{Title: "NaN only", Unit: "short", Width: 12, Height: 8, Queries: []dashboard.Query{{Expr: "nan"}}},
		{Title: "partly empty", Unit: "short", Width: 12, Height: 8, Queries: []dashboard.Query{
			{Expr: "rate(a[$__rate_interval])"}, {Expr: "empty"}}},
		{Title: "excused", Unit: "short", Width: 12, Height: 8, Needs: absentSource, Queries: []dashboard.Query{{Expr: "empty"}}},
		{Title: "excused but rejected", Unit: "short", Width: 12, Height: 8, Needs: absentSource, Queries: []dashboard.Query{{Expr: "bad("}}},
		{Title: "needed source runs", Unit: "short", Width: 12, Height: 8, Needs: presentSource, Queries: []dashboard.Query{{Expr: "empty"}}},
	}}}}
}

func testRules() []alert.Rule {
	return []alert.Rule{
		{File: "x.rules.yml", Group: "g", Name: "Healthy", Expr: "up == 0"},
		{File: "x.rules.yml", Group: "g", Name: "Firing", Expr: "a > 0"},
		{File: "x.rules.yml", Group: "g", Name: "NotLoaded", Expr: "up == 0"},
		{File: "x.rules.yml", Group: "g", Name: "Broken", Expr: "up == 0"},
		{File: "x.rules.yml", Group: "g", Name: "Rejected", Expr: "bad("},
	}
}

func fake() *fakePrometheus {
	return &fakePrometheus{
		data: map[string][]promapi.Series{
			"rate(a[20s])":      {series("x", 1, 2), series("y", math.NaN(), 3)},
			"nan":               {series("x", math.NaN())},
			`up{job="present"}`: {series("p", 1)},
			"a > 0":             {series("x", 1)},
		},
		groups: []promapi.RuleGroup{{Name: "g", File: "/etc/kvfleet/rules/x.rules.yml", Rules: []promapi.Rule{
			{Name: "Healthy", Type: "alerting", Health: "ok", State: "inactive"},
			{Name: "Firing", Type: "alerting", Health: "ok", State: "firing"},
			{Name: "Broken", Type: "alerting", Health: "err", LastError: "many-to-many matching not allowed"},
			{Name: "Rejected", Type: "alerting", Health: "ok"},
			{Name: "job:up:sum", Type: "recording", Health: "ok"},
		}}},
		alertmanagers: []string{"http://alertmanager:9093/api/v2/alerts"},
	}
}

func TestCheck(t *testing.T) {
	prom := fake()
	w := Window{Start: t0, End: t0.Add(10 * time.Minute), Step: 5 * time.Second}
	r, err := Check(context.Background(), prom, []dashboard.Board{testBoard()}, testRules(), w)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"board / NaN only: query A returned no data: nan",
		"board / partly empty: query B returned no data: empty",
		"board / excused but rejected: query A failed: bad_data: parse error",
		"board / needed source runs: query A returned no data: empty",
		"alert NotLoaded (x.rules.yml): not loaded by Prometheus (rule_files, or the rules mount)",
		`alert Broken (x.rules.yml): Prometheus's evaluation is "err": many-to-many matching not allowed`,
		"alert Rejected (x.rules.yml): evaluating the expression failed: bad_data: parse error",
	}
	got := r.Problems()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ex := r.Boards[0].Panels[3]; ex.Excused != absentSource.Why || len(ex.Problems()) != 0 {
		t.Errorf("the excused panel: excused %q, problems %v", ex.Excused, ex.Problems())
	}
	if !r.Boards[0].Panels[0].HasData() {
		t.Error("the panel with data: HasData false")
	}
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"board: 1/6 panels with data, 1 excused",
		"excused  excused (1 queries, 0 series)\n",
		"excused because: the absent source is not running",
		"panels: 1/6 with data, 1 excused, 4 failed",
		"alerts: 2/5 loaded, healthy and evaluated; firing: Firing",
		"7 problems:",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, out.String())
		}
	}

	// Every query was sent with Grafana's variables expanded, and the
	// excusing source asked once.
	needs := 0
	for _, q := range prom.asked {
		if strings.Contains(q, "$__") {
			t.Errorf("sent %q unexpanded", q)
		}
		if q == absentSource.Query {
			needs++
		}
	}
	if needs != 1 {
		t.Errorf("asked for %s %d times, want once", absentSource.Query, needs)
	}
}

func TestCheckWithoutAlertmanager(t *testing.T) {
	prom := fake()
	prom.alertmanagers = nil
	r, err := Check(context.Background(), prom, nil, nil, Window{Start: t0, End: t0.Add(time.Minute), Step: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Problems(); len(got) != 1 || !strings.Contains(got[0], "no Alertmanager") {
		t.Errorf("Problems = %v, want the missing Alertmanager", got)
	}
}

func TestPage(t *testing.T) {
	w := Window{Start: t0, End: t0.Add(10 * time.Minute), Step: 5 * time.Second}
	r, err := Check(context.Background(), fake(), []dashboard.Board{testBoard()}, nil, w)
	if err != nil {
		t.Fatal(err)
	}
	page := r.Boards[0].Page(w, "http://prometheus")
	panels := page.Rows[0].Panels
	if len(panels) != 6 || panels[0].Title != "with data" || panels[0].Width != 12 {
		t.Fatalf("panels = %+v", panels)
	}
	if l := panels[0].Lines; len(l) != 2 || l[0].Name != "x" || l[1].Name != "y" || len(l[0].Points) != 2 {
		t.Errorf("lines of the first panel = %+v, want x and y named by the legend", l)
	}
	if !strings.HasPrefix(panels[3].Note, "no data, excused: the absent source") {
		t.Errorf("excused panel's note = %q", panels[3].Note)
	}
	if !strings.HasPrefix(panels[1].Note, "FAILED: query A returned no data") {
		t.Errorf("failed panel's note = %q", panels[1].Note)
	}
	if panels[0].Note != "" {
		t.Errorf("a good panel has the note %q", panels[0].Note)
	}
}

func TestScalerNote(t *testing.T) {
	ctx := context.Background()
	checked := Report{Boards: []BoardResult{{Panels: []PanelResult{{Panel: dashboard.Panel{Needs: dashboard.Scaler}}}}}}
	if got := checked.ScalerNote(ctx, "http://127.0.0.1:1/metrics"); !strings.Contains(got, "its panels were checked") {
		t.Errorf("scaler scraped: %q", got)
	}
	excused := Report{Boards: []BoardResult{{Panels: []PanelResult{{Panel: dashboard.Panel{Needs: dashboard.Scaler}, Excused: "absent"}}}}}
	if got := excused.ScalerNote(ctx, "http://127.0.0.1:1/metrics"); !strings.Contains(got, "not running") {
		t.Errorf("no scaler anywhere: %q", got)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	if got := excused.ScalerNote(ctx, srv.URL); !strings.Contains(got, "unproven") {
		t.Errorf("a scaler on the host: %q", got)
	}
}
