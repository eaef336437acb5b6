package promapi

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
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
	for _, u := range []string{"", "127.0.0.1:9090", "ftp://x", "http://"} {
		if _, err := New(u, time.Second); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
}
