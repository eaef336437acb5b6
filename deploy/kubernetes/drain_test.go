package kubernetes_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// upstreamKeepalive finds the api upstream's keepalive_timeout.
var upstreamKeepalive = regexp.MustCompile(`(?s)upstream api \{[^}]*?keepalive_timeout (\d+s);`)

// TestDrainOutlastsNginxKeepalive: a stopping API replica answers with
// "Connection: close" for KVFLEET_DRAIN_DELAY and then closes its idle
// connections. Nginx must have closed every idle connection of its own to
// the replica by then (its upstream keepalive_timeout), or a write it sends
// on one as the replica closes it is lost to a 502 (nginx.conf says why it
// cannot be resent). TestComposeDrift and TestNginxConf carry the same
// values over to Kubernetes.
func TestDrainOutlastsNginxKeepalive(t *testing.T) {
	conf := strings.Join(directives(t, repo+"nginx/nginx.conf"), "\n")
	m := upstreamKeepalive.FindStringSubmatch(conf)
	if m == nil {
		t.Fatal("nginx/nginx.conf: no keepalive_timeout in upstream api (without it nginx keeps idle connections 60 s)")
	}
	keepalive, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("nginx/nginx.conf: keepalive_timeout %q: %v", m[1], err)
	}
	env := readCompose(t).Services["api"].Environment
	raw, ok := env["KVFLEET_DRAIN_DELAY"].(string)
	if !ok {
		t.Fatalf("docker-compose.yml: api has no KVFLEET_DRAIN_DELAY (got %v)", env["KVFLEET_DRAIN_DELAY"])
	}
	drain, err := time.ParseDuration(interpolate(raw))
	if err != nil {
		t.Fatalf("docker-compose.yml: KVFLEET_DRAIN_DELAY %q: %v", raw, err)
	}
	// A second of margin: nginx closes an idle connection on a timer,
	// and the replica's requests may take a moment to finish.
	if drain < keepalive+time.Second {
		t.Errorf("KVFLEET_DRAIN_DELAY %v must exceed nginx's upstream keepalive_timeout %v by at least 1 s", drain, keepalive)
	}
}
