package scaler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// The files in testdata are answers of the fleet's Prometheus (recorded
// with curl against a running fleet), served here for the queries below.
var recorded = map[string]struct {
	status int
	file   string
}{
	"vector":   {200, "testdata/vector.json"},
	"single":   {200, "testdata/single.json"},
	"empty":    {200, "testdata/empty.json"},
	"scalar":   {200, "testdata/scalar.json"},
	"nan":      {200, "testdata/nan.json"},
	"bad_data": {400, "testdata/bad_data.json"},
}

func recordedPrometheus(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		switch q := r.URL.Query().Get("query"); q {
		case "overloaded":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("Service Unavailable"))
		case "html":
			_, _ = w.Write([]byte("<html>not prometheus</html>"))
		case "slow": // answers only when the client gives up
			<-r.Context().Done()
		default:
			rec, ok := recorded[q]
			if !ok {
				t.Errorf("unexpected query %q", q)
				return
			}
			data, err := os.ReadFile(rec.file)
			if err != nil {
				t.Error(err)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.status)
			_, _ = w.Write(data)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPrometheusQuery(t *testing.T) {
	srv := recordedPrometheus(t)
	p, err := NewPrometheus(srv.URL+"/", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	impatient, err := NewPrometheus(srv.URL, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query       string
		samples     int
		first       float64
		unreachable bool
		fails       bool
	}{
		{query: "vector", samples: 3, first: 0.001333333333333331},
		{query: "single", samples: 1, first: 0},
		{query: "empty", samples: 0},
		{query: "scalar", samples: 1, first: 0},
		{query: "nan", samples: 0}, // NaN is no data
		{query: "bad_data", fails: true},
		{query: "html", fails: true},
		{query: "overloaded", fails: true, unreachable: true},
		{query: "slow", fails: true, unreachable: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			client := p
			if tt.query == "slow" {
				client = impatient
			}
			samples, err := client.Query(context.Background(), tt.query)
			if (err != nil) != tt.fails || errors.Is(err, ErrUnreachable) != tt.unreachable {
				t.Fatalf("err = %v, want failure %v, unreachable %v", err, tt.fails, tt.unreachable)
			}
			if len(samples) != tt.samples {
				t.Fatalf("%d samples, want %d: %+v", len(samples), tt.samples, samples)
			}
			if tt.samples > 0 && samples[0].Value != tt.first {
				t.Errorf("first value %g, want %g", samples[0].Value, tt.first)
			}
		})
	}
	vec, _ := p.Query(context.Background(), "vector")
	if vec[0].Labels["job"] != "api" || vec[0].Labels["instance"] == "" {
		t.Errorf("labels %v", vec[0].Labels)
	}
}

func TestPrometheusDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p, err := NewPrometheus(srv.URL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(context.Background(), "up"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestNewPrometheusRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:9090", "ftp://x:1", "http://"} {
		if _, err := NewPrometheus(u, time.Second); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
