//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func baseURL() string {
	if u := os.Getenv("KVFLEET_E2E_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return "http://127.0.0.1:8000"
}

var client = &http.Client{Timeout: 15 * time.Second}

type answer struct {
	status   int
	servedBy string
	body     map[string]any
	raw      string
}

func (a answer) str(field string) string {
	s, _ := a.body[field].(string)
	return s
}

func call(t *testing.T, method, target, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, baseURL()+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, servedBy: resp.Header.Get("X-Served-By"), raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func put(t *testing.T, key, value string) answer {
	body, _ := json.Marshal(map[string]string{"key_name": key, "key_value": value})
	return call(t, http.MethodPut, "/", "application/json", body)
}

func get(t *testing.T, key string) answer {
	return call(t, http.MethodGet, "/?"+url.Values{"key": {key}}.Encode(), "", nil)
}

func del(t *testing.T, key string) answer {
	return call(t, http.MethodDelete, "/?"+url.Values{"key_name": {key}}.Encode(), "", nil)
}

// waitFor polls GET key until check accepts it, and returns how long that took.
func waitFor(t *testing.T, key string, check func(answer) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		a := get(t, key)
		if check(a) {
			return time.Since(start)
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("GET %q never converged; last answer %d %s", key, a.status, a.raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func TestOriginalCalls(t *testing.T) {
	key := unique("teste")
	p := put(t, key, "valor")
	if p.status != http.StatusAccepted || p.str("message") != "Queued to add_key" || p.str("version") == "" {
		t.Fatalf("PUT = %d %s", p.status, p.raw)
	}
	waitFor(t, key, func(a answer) bool { return a.status == http.StatusOK && a.str("value") == "valor" })
	d := del(t, key)
	if d.status != http.StatusAccepted || d.str("message") != "Queued to del_key" {
		t.Fatalf("DELETE = %d %s", d.status, d.raw)
	}
	waitFor(t, key, func(a answer) bool { return a.status == http.StatusNotFound && a.str("detail") == "Key not found" })
}

func TestAwkwardKeysRoundTrip(t *testing.T) {
	for _, k := range []string{"a/b", "a%2Fb", "a b", "ключ", "😀", "?", "&", "#", "+", "x=y&z"} {
		key := unique("") + k
		if p := put(t, key, "v:"+k); p.status != http.StatusAccepted {
			t.Fatalf("PUT %q = %d %s", key, p.status, p.raw)
		}
		waitFor(t, key, func(a answer) bool {
			return a.status == http.StatusOK && a.str("value") == "v:"+k && a.str("key_name") == key
		})
	}
}

func TestBadInputThroughNginx(t *testing.T) {
	cases := []struct {
		name, method, target, contentType, body string
		status                                  int
		code                                    string
	}{
		{"malformed JSON", "PUT", "/", "application/json", `{"key_name":`, 400, "invalid_json"},
		{"trailing data", "PUT", "/", "application/json", `{"key_name":"k","key_value":"v"} x`, 400, "invalid_json"},
		{"empty key", "PUT", "/", "application/json", `{"key_name":"","key_value":"v"}`, 400, "missing_key"},
		{"value not a string", "PUT", "/", "application/json", `{"key_name":"k","key_value":7}`, 400, "invalid_value"},
		{"lone surrogate", "PUT", "/", "application/json", `{"key_name":"k","key_value":"\ud800"}`, 400, "invalid_utf8"},
		{"wrong content type", "PUT", "/", "text/plain", `{"key_name":"k","key_value":"v"}`, 415, "unsupported_media_type"},
		{"key too long", "PUT", "/", "application/json", `{"key_name":"` + strings.Repeat("k", 1025) + `","key_value":"v"}`, 400, "key_too_long"},
		{"POST", "POST", "/", "application/json", `{"key_name":"k","key_value":"v"}`, 405, "method_not_allowed"},
		{"GET without key", "GET", "/", "", "", 400, "missing_key"},
		{"DELETE without key", "DELETE", "/", "", "", 400, "missing_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, tc.method, tc.target, tc.contentType, []byte(tc.body))
			if a.status != tc.status || a.str("code") != tc.code {
				t.Fatalf("%s %s = %d %s, want %d %s", tc.method, tc.target, a.status, a.raw, tc.status, tc.code)
			}
		})
	}
	// nginx refuses a body over its limit before any replica sees it.
	a := call(t, http.MethodPut, "/", "application/json", bytes.Repeat([]byte("x"), 9<<20))
	if a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("9 MiB body = %d, want 413", a.status)
	}
	// A client cannot smuggle a write through the nginx-to-API method channel.
	req, _ := http.NewRequest(http.MethodPost, baseURL()+"/", strings.NewReader(`{"key_name":"smuggled","key_value":"v"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kvfleet-Write-Method", "PUT")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST with the write-method header = %d, want 405", resp.StatusCode)
	}
}

// TestReadAfterWriteConvergence measures how long a write takes to become
// readable through nginx; it fails only if a write never shows.
func TestReadAfterWriteConvergence(t *testing.T) {
	var took []time.Duration
	for i := range 50 {
		key := unique(fmt.Sprintf("converge-%d", i))
		if p := put(t, key, "v"); p.status != http.StatusAccepted {
			t.Fatalf("PUT = %d %s", p.status, p.raw)
		}
		took = append(took, waitFor(t, key, func(a answer) bool { return a.status == http.StatusOK }))
	}
	slices.Sort(took)
	t.Logf("read-after-write convergence over %d writes: median %v, p90 %v, max %v",
		len(took), took[len(took)/2], took[len(took)*9/10], took[len(took)-1])
}

func TestRequestsSpreadOverReplicas(t *testing.T) {
	want := replicas(t, "api")
	seen := map[string]int{}
	for range 20 * len(want) {
		a := call(t, http.MethodGet, "/health", "", nil)
		seen[a.servedBy]++
	}
	if len(seen) != len(want) {
		t.Fatalf("answers came from %d replicas (%v), want all %d", len(seen), seen, len(want))
	}
	t.Logf("requests per replica: %v", seen)
}

// replicas lists the running containers of a compose service.
func replicas(t *testing.T, service string) []string {
	t.Helper()
	project := os.Getenv("KVFLEET_E2E_PROJECT")
	if project == "" {
		project = "kvfleet"
	}
	out, err := exec.Command("docker", "ps", "-q",
		"--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service="+service).Output()
	if err != nil {
		t.Fatalf("docker ps: %v (the e2e tests need the docker CLI)", err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		t.Fatalf("no running %s container in project %s", service, project)
	}
	return ids
}

// TestKillingAnAPIReplica kills one API container outright and checks that
// the next 100 requests, reads and writes, all succeed.
func TestKillingAnAPIReplica(t *testing.T) {
	ids := replicas(t, "api")
	if len(ids) < 2 {
		t.Fatalf("need at least 2 API replicas, have %d", len(ids))
	}
	victim := ids[0]
	if out, err := exec.Command("docker", "kill", victim).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "start", victim).CombinedOutput(); err != nil {
			t.Errorf("docker start %s: %v: %s", victim, err, out)
		}
	})
	var failures []string
	for i := range 100 {
		key := unique(fmt.Sprintf("kill-%d", i))
		a := put(t, key, "v")
		if i%2 == 1 {
			a = get(t, key)
			if a.status == http.StatusNotFound { // not applied yet: still a good answer
				a.status = http.StatusOK
			}
		}
		if a.status >= 500 {
			failures = append(failures, fmt.Sprintf("#%d: %d %s", i, a.status, a.raw))
		}
	}
	if len(failures) > 0 {
		t.Fatalf("%d of 100 requests failed after killing a replica: %v", len(failures), failures)
	}
}
