package scaler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The HTTP behaviour (status codes, envelopes, timeouts, recorded answers
// of the fleet's Prometheus) is promapi's and tested there; these tests
// hold what the adapter adds: samples instead of series, NaN and ±Inf
// left out, Prometheus's own clock, and ErrUnreachable as the scaler's
// callers test for it.

func fakePrometheus(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Has("time") {
			t.Errorf("query at time %s, want Prometheus's current time", r.URL.Query().Get("time"))
		}
		var status int
		var body string
		switch q := r.URL.Query().Get("query"); q {
		case "vector":
			status, body = 200, `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"job":"api","instance":"a"},"value":[1795690875.561,"NaN"]},
				{"metric":{"job":"api","instance":"b"},"value":[1795690875.561,"0.5"]},
				{"metric":{"job":"api","instance":"c"},"value":[1795690875.561,"+Inf"]},
				{"metric":{"job":"api","instance":"d"},"value":[1795690875.561,"-Inf"]},
				{"metric":{"job":"api","instance":"e"},"value":[1795690875.561,"2"]}]}}`
		case "scalar":
			status, body = 200, `{"status":"success","data":{"resultType":"scalar","result":[1795690875.597,"0.25"]}}`
		case "scalar_nan":
			status, body = 200, `{"status":"success","data":{"resultType":"scalar","result":[1795690875.597,"NaN"]}}`
		case "nan":
			status, body = 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795690876.964,"NaN"]}]}}`
		case "bad_data":
			status, body = 400, `{"status":"error","errorType":"bad_data","error":"parse error: missing unit character in duration"}`
		case "html":
			status, body = 200, "<html>not prometheus</html>"
		case "overloaded":
			status, body = 503, "Service Unavailable"
		default:
			t.Errorf("unexpected query %q", q)
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPrometheusQuery(t *testing.T) {
	p, err := NewPrometheus(fakePrometheus(t).URL+"/", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query       string
		want        []float64
		instances   []string
		unreachable bool
		fails       string // part of the error; "" for success
	}{
		{query: "vector", want: []float64{0.5, 2}, instances: []string{"b", "e"}}, // NaN and ±Inf are no data
		{query: "scalar", want: []float64{0.25}, instances: []string{""}},
		{query: "scalar_nan"},
		{query: "nan"},
		{query: "bad_data", fails: "missing unit character"},
		{query: "html", fails: "Prometheus server?"},
		{query: "overloaded", fails: "503", unreachable: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			samples, err := p.Query(context.Background(), tt.query)
			if (err != nil) != (tt.fails != "") || errors.Is(err, ErrUnreachable) != tt.unreachable {
				t.Fatalf("err = %v, want failure %q, unreachable %v", err, tt.fails, tt.unreachable)
			}
			if err != nil && !strings.Contains(err.Error(), tt.fails) {
				t.Errorf("err = %v, want it to say %q", err, tt.fails)
			}
			if len(samples) != len(tt.want) {
				t.Fatalf("samples %+v, want values %v", samples, tt.want)
			}
			for i, s := range samples {
				if s.Value != tt.want[i] || s.Labels["instance"] != tt.instances[i] {
					t.Errorf("sample %d = %+v, want value %g, instance %q", i, s, tt.want[i], tt.instances[i])
				}
			}
		})
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
