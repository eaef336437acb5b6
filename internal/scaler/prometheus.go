package scaler

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

// ErrUnreachable marks a failure to ask Prometheus at all (connection,
// timeout, 5xx), as opposed to a query it rejected: the first holds every
// service as "prometheus_down", the second is a missing signal.
var ErrUnreachable = errors.New("prometheus unreachable")

// Sample is one element of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Prometheus asks a Prometheus server's HTTP API for instant queries.
type Prometheus struct {
	base    *url.URL
	client  *http.Client
	timeout time.Duration
}

// NewPrometheus returns a client of the server at rawURL (for example
// http://127.0.0.1:9090); each query is bounded by timeout.
func NewPrometheus(rawURL string, timeout time.Duration) (*Prometheus, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want http://host:port", rawURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/query"
	return &Prometheus{base: u, client: &http.Client{}, timeout: timeout}, nil
}

// queryResponse is the API's envelope (prometheus.io/docs: "HTTP API").
type queryResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// Query runs an instant query and returns a vector's samples (a scalar is
// one sample without labels). Samples whose value is NaN or infinite, as
// a division by a zero rate gives, are left out: they are no data.
func (p *Prometheus) Query(ctx context.Context, query string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	u := *p.base
	u.RawQuery = url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrUnreachable, err)
	}
	var qr queryResponse
	if err := json.Unmarshal(body, &qr); err != nil {
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: %s", ErrUnreachable, resp.Status)
		}
		return nil, fmt.Errorf("prometheus answered %s, not the query API (is %s a Prometheus server?)", resp.Status, p.base.Host)
	}
	if qr.Status != "success" {
		err := fmt.Errorf("prometheus: %s: %s", qr.ErrorType, qr.Error)
		if resp.StatusCode >= 500 {
			err = fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return nil, err
	}
	return decodeResult(qr.Data.ResultType, qr.Data.Result)
}

func decodeResult(resultType string, raw json.RawMessage) ([]Sample, error) {
	switch resultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(raw, &vec); err != nil {
			return nil, fmt.Errorf("prometheus: decoding a vector: %w", err)
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			v, err := sampleValue(s.Value)
			if err != nil {
				return nil, err
			}
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out = append(out, Sample{Labels: s.Metric, Value: v})
			}
		}
		return out, nil
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, fmt.Errorf("prometheus: decoding a scalar: %w", err)
		}
		v, err := sampleValue(pair)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, err
		}
		return []Sample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("prometheus: result type %q, want an instant vector or a scalar", resultType)
}

// sampleValue reads [timestamp, "value"]: Prometheus sends values as
// strings so that NaN and ±Inf survive JSON.
func sampleValue(pair [2]any) (float64, error) {
	s, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("prometheus: sample value %v is not a string", pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("prometheus: sample value %q: %w", s, err)
	}
	return v, nil
}
