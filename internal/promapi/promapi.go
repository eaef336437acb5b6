// Package promapi is a small client of Prometheus's HTTP API
// (prometheus.io/docs/prometheus/latest/querying/api/): range and instant
// queries, the loaded rules and the discovered Alertmanagers. It is the
// repository's one HTTP client of Prometheus: the live check of the
// dashboards and alerts asks it, and so does the scaler (through its
// adapter in internal/scaler), which needs to tell a Prometheus it could
// not ask (ErrUnreachable) from a query Prometheus rejected.
package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Point is one sample of a series.
type Point struct {
	T time.Time
	V float64
}

// Series is one labelled series of a query's result.
type Series struct {
	Labels map[string]string
	Points []Point
}

// HasData reports whether any point of the series is a number (a ratio of
// two zero rates is NaN: no data).
func (s Series) HasData() bool {
	for _, p := range s.Points {
		if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
			return true
		}
	}
	return false
}

// ErrUnreachable marks a failure to ask Prometheus at all: a connection
// error or timeout, a broken answer, or an HTTP 5xx or 429 (overloaded,
// restarting, or a proxy in front of it that is), as opposed to a query
// Prometheus answered and rejected. The scaler holds every service while
// Prometheus is unreachable, but treats a rejected query as one missing
// signal, so the two must not be confused.
var ErrUnreachable = errors.New("prometheus unreachable")

// Client asks one Prometheus server.
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

// New returns a client of the server at rawURL (http://127.0.0.1:9090, or
// a path prefix such as http://host/prometheus); each request is bounded by
// timeout.
func New(rawURL string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want an http:// or https:// URL with a host, like http://127.0.0.1:9090", rawURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, http: &http.Client{}, timeout: timeout}, nil
}

// envelope is the API's answer around its data.
type envelope struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// get asks path with the parameters and decodes the data into out. Errors
// that mean Prometheus could not be asked wrap ErrUnreachable; an answer
// that is not the API's envelope says the URL is probably not Prometheus.
func (c *Client) get(ctx context.Context, path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrUnreachable, path, err)
	}
	var env envelope
	notAPI := json.Unmarshal(body, &env) != nil || env.Status == ""
	// Prometheus answers 503 for a query that timed out and 500 for its
	// own faults, with an envelope; a proxy or a starting server answers
	// 502, 503 or 429 without one. Either way the question was not
	// answered, so the status decides, not the body.
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		if notAPI {
			return fmt.Errorf("%w: %s answered %s", ErrUnreachable, path, resp.Status)
		}
		return fmt.Errorf("%w: %s answered %s: %s: %s", ErrUnreachable, path, resp.Status, env.ErrorType, env.Error)
	}
	if notAPI {
		return fmt.Errorf("prometheus: %s answered %s, not the HTTP API (is %s a Prometheus server?)", path, resp.Status, c.base.Host)
	}
	if env.Status != "success" {
		return fmt.Errorf("prometheus: %s: %s", env.ErrorType, env.Error)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("prometheus: decoding %s: %w", path, err)
	}
	return nil
}

// result is a query's data.
type result struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// QueryRange evaluates expr from start to end every step.
func (c *Client) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	var r result
	err := c.get(ctx, "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {formatTime(start)},
		"end":   {formatTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}, &r)
	if err != nil {
		return nil, err
	}
	if r.ResultType != "matrix" {
		return nil, fmt.Errorf("prometheus: a range query returned a %s", r.ResultType)
	}
	var matrix []struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	if err := json.Unmarshal(r.Result, &matrix); err != nil {
		return nil, fmt.Errorf("prometheus: decoding a matrix: %w", err)
	}
	out := make([]Series, 0, len(matrix))
	for _, m := range matrix {
		s := Series{Labels: m.Metric, Points: make([]Point, 0, len(m.Values))}
		for _, v := range m.Values {
			p, err := point(v)
			if err != nil {
				return nil, err
			}
			s.Points = append(s.Points, p)
		}
		out = append(out, s)
	}
	return out, nil
}

// Query evaluates expr at t; a scalar is one series without labels. A
// zero t asks for the server's current time, so that a caller that wants
// "now" is not off by the skew between its clock and Prometheus's.
func (c *Client) Query(ctx context.Context, expr string, t time.Time) ([]Series, error) {
	params := url.Values{"query": {expr}}
	if !t.IsZero() {
		params.Set("time", formatTime(t))
	}
	var r result
	if err := c.get(ctx, "/api/v1/query", params, &r); err != nil {
		return nil, err
	}
	switch r.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Result, &vec); err != nil {
			return nil, fmt.Errorf("prometheus: decoding a vector: %w", err)
		}
		out := make([]Series, 0, len(vec))
		for _, v := range vec {
			p, err := point(v.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Series{Labels: v.Metric, Points: []Point{p}})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Result, &v); err != nil {
			return nil, fmt.Errorf("prometheus: decoding a scalar: %w", err)
		}
		p, err := point(v)
		if err != nil {
			return nil, err
		}
		return []Series{{Labels: map[string]string{}, Points: []Point{p}}}, nil
	}
	return nil, fmt.Errorf("prometheus: an instant query returned a %s", r.ResultType)
}

// Rule is one rule as Prometheus has loaded and last evaluated it.
type Rule struct {
	Name string `json:"name"`
	// Query is the expression as Prometheus parsed it.
	Query string `json:"query"`
	// Type is "alerting" or "recording".
	Type string `json:"type"`
	// Health is "ok", "err" or "unknown" (not yet evaluated).
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	// State of an alerting rule: "inactive", "pending" or "firing".
	State string `json:"state"`
}

// RuleGroup is a group of rules and the file it was loaded from.
type RuleGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []Rule `json:"rules"`
}

// Rules returns the rule groups Prometheus has loaded.
func (c *Client) Rules(ctx context.Context) ([]RuleGroup, error) {
	var data struct {
		Groups []RuleGroup `json:"groups"`
	}
	if err := c.get(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	return data.Groups, nil
}

// Alertmanagers returns the URLs of the Alertmanagers Prometheus sends
// alerts to.
func (c *Client) Alertmanagers(ctx context.Context) ([]string, error) {
	var data struct {
		Active []struct {
			URL string `json:"url"`
		} `json:"activeAlertmanagers"`
	}
	if err := c.get(ctx, "/api/v1/alertmanagers", nil, &data); err != nil {
		return nil, err
	}
	urls := make([]string, 0, len(data.Active))
	for _, a := range data.Active {
		urls = append(urls, a.URL)
	}
	return urls, nil
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

// point reads [unix seconds, "value"]: values are strings so that NaN and
// ±Inf survive JSON.
func point(pair [2]any) (Point, error) {
	ts, ok := pair[0].(float64)
	if !ok {
		return Point{}, fmt.Errorf("prometheus: sample time %v is not a number", pair[0])
	}
	s, ok := pair[1].(string)
	if !ok {
		return Point{}, fmt.Errorf("prometheus: sample value %v is not a string", pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return Point{}, fmt.Errorf("prometheus: sample value %q: %w", s, err)
	}
	return Point{T: time.UnixMilli(int64(math.Round(ts * 1000))), V: v}, nil
}
