package scaler

import (
	"context"
	"math"
	"time"

	"github.com/kvfleet/kvfleet/internal/promapi"
)

// ErrUnreachable marks a failure to ask Prometheus at all (connection,
// timeout, 5xx, 429), as opposed to a query it rejected: the first holds
// every service as "prometheus_down", the second is a missing signal. It
// is promapi's sentinel, so that errors from the real client match it, and
// named here so that the Querier contract and its fakes need only this
// package.
var ErrUnreachable = promapi.ErrUnreachable

// Sample is one element of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Prometheus is the scaler's Querier over promapi's client of a
// Prometheus server.
type Prometheus struct {
	client *promapi.Client
}

// NewPrometheus returns a client of the server at rawURL (for example
// http://127.0.0.1:9090); each query is bounded by timeout.
func NewPrometheus(rawURL string, timeout time.Duration) (*Prometheus, error) {
	c, err := promapi.New(rawURL, timeout)
	if err != nil {
		return nil, err
	}
	return &Prometheus{client: c}, nil
}

// Query runs an instant query at Prometheus's current time and returns a
// vector's samples (a scalar is one sample without labels). Samples whose
// value is NaN or infinite, as a division by a zero rate gives, are left
// out: they are no data.
func (p *Prometheus) Query(ctx context.Context, query string) ([]Sample, error) {
	series, err := p.client.Query(ctx, query, time.Time{})
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(series))
	for _, s := range series {
		// An instant query's series have one point each.
		for _, pt := range s.Points {
			if !math.IsNaN(pt.V) && !math.IsInf(pt.V, 0) {
				out = append(out, Sample{Labels: s.Labels, Value: pt.V})
			}
		}
	}
	return out, nil
}
