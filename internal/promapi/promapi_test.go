package promapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer answers like Prometheus's HTTP API.
func fakeServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/prom/api/v1/query_range", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("query") == "bad(" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"parse error: unclosed left parenthesis"}`))
			return
		}
		if q.Get("start") != "1700000000" || q.Get("end") != "1700000060.5" || q.Get("step") != "15" {
			t.Errorf("range %s..%s step %s, want 1700000000..1700000060.5 step 15", q.Get("start"), q.Get("end"), q.Get("step"))
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"instance":"a"},"values":[[1700000000,"1"],[1700000015,"NaN"],[1700000030.25,"2.5"]]},
			{"metric":{"instance":"b"},"values":[[1700000000,"NaN"]]}]}}`))
	})
	mux.HandleFunc("/prom/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("query") {
		case "scalar(1)":
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}`))
		default:
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000000,"3"]}]}}`))
		}
	})
	mux.HandleFunc("/prom/api/v1/rules", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"success","data":{"groups":[{"name":"g","file":"/etc/kvfleet/rules/a.rules.yml","rules":[
			{"name":"A","query":"up == 0","type":"alerting","health":"ok","lastError":"","state":"firing"}]}]}}`))
	})
	mux.HandleFunc("/prom/api/v1/alertmanagers", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"success","data":{"activeAlertmanagers":[{"url":"http://alertmanager:9093/api/v2/alerts"}],"droppedAlertmanagers":[]}}`))
	})
	mux.HandleFunc("/notprom/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>hello</html>", http.StatusNotFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestClient(t *testing.T) {
	srv := fakeServer(t)
	c, err := New(srv.URL+"/prom/", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Unix(1700000000, 0)
	series, err := c.QueryRange(ctx, "up", start, start.Add(60500*time.Millisecond), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 2 || series[0].Labels["instance"] != "a" || len(series[0].Points) != 3 ||
		series[0].Points[2].V != 2.5 || !series[0].Points[2].T.Equal(time.UnixMilli(1700000030250)) ||
		!math.IsNaN(series[0].Points[1].V) {
		t.Errorf("QueryRange = %+v", series)
	}
	if !series[0].HasData() || series[1].HasData() {
		t.Error("HasData: want true for a series with a number, false for one of NaNs only")
	}
	if _, err := c.QueryRange(ctx, "bad(", start, start.Add(60500*time.Millisecond), 15*time.Second); err == nil || !strings.Contains(err.Error(), "unclosed left parenthesis") {
		t.Errorf("a rejected query: error %v, want Prometheus's message", err)
	}
	vec, err := c.Query(ctx, "up", start)
	if err != nil || len(vec) != 1 || vec[0].Labels["job"] != "api" || vec[0].Points[0].V != 3 {
		t.Errorf("Query(vector) = %+v, %v", vec, err)
	}
	sc, err := c.Query(ctx, "scalar(1)", start)
	if err != nil || len(sc) != 1 || sc[0].Points[0].V != 1 {
		t.Errorf("Query(scalar) = %+v, %v", sc, err)
	}
	groups, err := c.Rules(ctx)
	if err != nil || len(groups) != 1 || groups[0].Rules[0].Name != "A" || groups[0].Rules[0].State != "firing" {
		t.Errorf("Rules = %+v, %v", groups, err)
	}
	ams, err := c.Alertmanagers(ctx)
	if err != nil || len(ams) != 1 || ams[0] != "http://alertmanager:9093/api/v2/alerts" {
		t.Errorf("Alertmanagers = %v, %v", ams, err)
	}

	other, _ := New(srv.URL+"/notprom", 5*time.Second)
	if _, err := other.Query(ctx, "up", start); err == nil || !strings.Contains(err.Error(), "not the HTTP API") {
		t.Errorf("a server that is not Prometheus: error %v", err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9090", "localhost:9090", "ftp://x", "ftp://x:1", "http://", "http://%zz"} {
		_, err := New(u, time.Second)
		if err == nil || !strings.Contains(err.Error(), "want an http:// or https:// URL with a host") {
			t.Errorf("New(%q): err = %v, want one that says what a good URL is", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:9090", "https://prometheus.example/prefix/"} {
		if _, err := New(u, time.Second); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

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

// answers maps a query to what a server (Prometheus, a proxy in front of
// it, or something else) answers.
var answers = map[string]struct {
	status int
	body   string
}{
	"overloaded":   {503, "Service Unavailable"},
	"bad_gateway":  {502, "<html>502 Bad Gateway</html>"},
	"timeout":      {503, `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`},
	"internal":     {500, `{"status":"error","errorType":"internal","error":"something broke"}`},
	"throttled":    {429, "Too Many Requests"},
	"throttled_js": {429, `{"status":"error","errorType":"unavailable","error":"too many queries"}`},
	"execution":    {422, `{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`},
	"html":         {200, "<html>not prometheus</html>"},
	"not_found":    {404, "<html>404 page not found</html>"},
	"other_json":   {200, `{"hello":"world"}`},
}

func recordedPrometheus(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query().Get("query")
		if a, ok := answers[q]; ok {
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
			return
		}
		switch q {
		case "slow": // answers only when the client gives up
			<-r.Context().Done()
		case "truncated": // promises more body than it sends, then hangs up
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"status\":\"succ")
			_ = buf.Flush()
			_ = conn.Close()
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

func TestQueryAnswers(t *testing.T) {
	srv := recordedPrometheus(t)
	c, err := New(srv.URL+"/", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	impatient, err := New(srv.URL, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	tests := []struct {
		query       string
		series      int
		first       float64 // the first series' value; NaN for NaN
		unreachable bool
		fails       string // part of the error; "" for success
	}{
		{query: "vector", series: 3, first: 0.001333333333333331},
		{query: "single", series: 1, first: 0},
		{query: "empty", series: 0},
		{query: "scalar", series: 1, first: 0},
		{query: "nan", series: 1, first: nan}, // the client keeps NaN; callers decide it is no data
		{query: "bad_data", fails: "missing unit character"},
		{query: "execution", fails: "many-to-many"},
		{query: "html", fails: "is 127.0.0.1"},
		{query: "not_found", fails: "a Prometheus server?"},
		{query: "other_json", fails: "not the HTTP API"},
		{query: "overloaded", fails: "503", unreachable: true},
		{query: "bad_gateway", fails: "502", unreachable: true},
		{query: "timeout", fails: "query timed out", unreachable: true},
		{query: "internal", fails: "something broke", unreachable: true},
		{query: "throttled", fails: "429", unreachable: true},
		{query: "throttled_js", fails: "too many queries", unreachable: true},
		{query: "truncated", fails: "reading", unreachable: true},
		{query: "slow", fails: "deadline", unreachable: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			client := c
			if tt.query == "slow" {
				client = impatient
			}
			series, err := client.Query(context.Background(), tt.query, time.Time{})
			if (err != nil) != (tt.fails != "") || errors.Is(err, ErrUnreachable) != tt.unreachable {
				t.Fatalf("err = %v, want failure %q, unreachable %v", err, tt.fails, tt.unreachable)
			}
			if err != nil && !strings.Contains(err.Error(), tt.fails) {
				t.Errorf("err = %v, want it to say %q", err, tt.fails)
			}
			if len(series) != tt.series {
				t.Fatalf("%d series, want %d: %+v", len(series), tt.series, series)
			}
			if tt.series == 0 {
				return
			}
			if v := series[0].Points[0].V; v != tt.first && !(math.IsNaN(v) && math.IsNaN(tt.first)) {
				t.Errorf("first value %g, want %g", v, tt.first)
			}
			if len(series[0].Points) != 1 {
				t.Errorf("%d points in an instant query's series, want 1", len(series[0].Points))
			}
		})
	}
	vec, _ := c.Query(context.Background(), "vector", time.Time{})
	if vec[0].Labels["job"] != "api" || vec[0].Labels["instance"] == "" ||
		!vec[0].Points[0].T.Equal(time.UnixMilli(1795690875561)) {
		t.Errorf("first series %+v", vec[0])
	}
}

// A zero time leaves the evaluation time to Prometheus's clock; any other
// is sent.
func TestQueryTime(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		defer mu.Unlock()
		if q.Has("time") {
			got = append(got, q.Get("time"))
		} else {
			got = append(got, "absent")
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	defer srv.Close()
	c, err := New(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{{}, time.UnixMilli(1700000000250)} {
		if _, err := c.Query(context.Background(), "up", at); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "absent" || got[1] != "1700000000.25" {
		t.Errorf("time parameters %q, want [absent 1700000000.25]", got)
	}
}

// Every request, not only instant queries, tells an unreachable server
// from a rejected question.
func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	down, err := New(srv.URL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Unix(1700000000, 0)
	if _, err := down.Query(ctx, "up", t0); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Query: err = %v, want ErrUnreachable", err)
	}
	if _, err := down.QueryRange(ctx, "up", t0, t0.Add(time.Minute), 15*time.Second); !errors.Is(err, ErrUnreachable) {
		t.Errorf("QueryRange: err = %v, want ErrUnreachable", err)
	}
	if _, err := down.Rules(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Rules: err = %v, want ErrUnreachable", err)
	}
	if _, err := down.Alertmanagers(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Alertmanagers: err = %v, want ErrUnreachable", err)
	}

	rejected, err := New(fakeServer(t).URL+"/prom", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rejected.QueryRange(ctx, "bad(", t0, t0.Add(time.Minute), 15*time.Second); err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("a rejected range query: err = %v, want an error that is not ErrUnreachable", err)
	}
}
