// Package dashboard holds the fleet's Grafana dashboards as code: each
// board is a list of rows of panels, each panel a few PromQL queries. The
// same definitions produce the JSON that Grafana is provisioned with
// (deploy/grafana/dashboards, through grafana-foundation-sdk) and tell the
// live check (internal/livecheck) and the renderer (internal/chart) what
// to query and draw, so that what is proven and pictured is what Grafana
// shows.
package dashboard

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kind is how a panel shows its queries.
type Kind int

const (
	// TimeSeries draws every series of every query over time.
	TimeSeries Kind = iota
	// Stat shows each query's latest value as a big number.
	Stat
)

// Query is one PromQL expression of a panel. Expressions may use
// Grafana's $__rate_interval, which Expand replaces outside Grafana.
type Query struct {
	Expr string
	// Legend names each series in Grafana's legend format
	// ("{{instance}} {{role}}"); empty: the series' labels.
	Legend string
}

// Need names the targets a panel's data come from when they may be absent
// from a healthy fleet (an exporter of another profile, a scaler that is
// not a fleet service). The live check excuses a panel without data, and
// says why, only when Query returns nothing.
type Need struct {
	// Query returns data while the source is scraped, e.g. up{job="scaler"}.
	Query string
	// Why the source may be absent, for the live check's report.
	Why string
}

// Panel is one chart or number of a board.
type Panel struct {
	Title       string
	Description string
	Kind        Kind
	// Unit is Grafana's unit id: "reqps", "ops", "s", "percentunit",
	// "bytes", "short".
	Unit string
	// Width in Grafana's grid columns (24 in a row); Height in grid rows.
	Width, Height uint32
	Queries       []Query
	Needs         *Need
}

// Row is a titled band of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// Board is one dashboard.
type Board struct {
	// File is the JSON file's name under deploy/grafana/dashboards.
	File        string
	UID         string
	Title       string
	Description string
	Rows        []Row
}

// Panels lists the board's panels in order.
func (b Board) Panels() []Panel {
	var ps []Panel
	for _, r := range b.Rows {
		ps = append(ps, r.Panels...)
	}
	return ps
}

// Boards returns every dashboard of the fleet.
func Boards() []Board {
	return []Board{overview(), redisBoard(), databaseBoard(), rabbitmqBoard(), autoscalingBoard()}
}

// ScrapeInterval is Prometheus's scrape interval in the fleet
// (deploy/prometheus/prometheus.yml), which Grafana's data source is told
// (timeInterval) to compute $__rate_interval.
const ScrapeInterval = 5 * time.Second

// Expand replaces Grafana's interval variables in expr as Grafana does
// for a range query with the given step: $__interval is the step, and
// $__rate_interval is max(step + scrape interval, 4 × scrape interval),
// the shortest range a rate() can be computed over.
func Expand(expr string, step time.Duration) string {
	rate := max(step+ScrapeInterval, 4*ScrapeInterval)
	return strings.NewReplacer(
		"$__rate_interval", promDuration(rate),
		"$__interval", promDuration(step),
	).Replace(expr)
}

// promDuration writes d in PromQL's duration syntax, in whole seconds.
func promDuration(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s"
}

// SeriesName names a series of the query as Grafana's legend does: the
// Legend with each {{label}} replaced by the series' value of it, or,
// without a Legend, the labels themselves.
func (q Query) SeriesName(labels map[string]string) string {
	if q.Legend == "" {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+`="`+labels[k]+`"`)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return legendLabel.ReplaceAllStringFunc(q.Legend, func(m string) string {
		return labels[strings.TrimSpace(m[2:len(m)-2])]
	})
}

var legendLabel = regexp.MustCompile(`\{\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\}\}`)
