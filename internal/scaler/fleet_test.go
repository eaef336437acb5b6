package scaler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingRunner is a Docker that records the commands it is given and
// answers them with respond.
type recordingRunner struct {
	mu      sync.Mutex
	calls   []string
	respond func(cmd string) (string, error)
}

func (r *recordingRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	cmd := name + " " + strings.Join(args, " ")
	r.mu.Lock()
	r.calls = append(r.calls, cmd)
	r.mu.Unlock()
	out, err := r.respond(cmd)
	return []byte(out), err
}

// kinds names the calls by what they do, in order.
func (r *recordingRunner) kinds() []string {
	var out []string
	for _, c := range r.calls {
		switch {
		case strings.HasPrefix(c, "docker ps"):
			out = append(out, "ps")
		case strings.HasPrefix(c, "docker stop"):
			out = append(out, "stop")
		case strings.Contains(c, " up --detach"):
			out = append(out, "up")
		case strings.Contains(c, " exec -T nginx nginx"):
			out = append(out, "reload")
		default:
			out = append(out, c)
		}
	}
	return out
}

func (r *recordingRunner) find(prefix string) string {
	for _, c := range r.calls {
		if strings.Contains(c, prefix) {
			return c
		}
	}
	return ""
}

// psOutput is docker ps's answer for replicas numbered nums.
func psOutput(status string, nums ...int) string {
	var b strings.Builder
	for _, n := range nums {
		fmt.Fprintf(&b, "id%d\t%d\tUp 2 minutes%s\n", n, n, status)
	}
	return b.String()
}

func replicas(nums ...int) []Replica {
	out := make([]Replica, len(nums))
	for i, n := range nums {
		out[i] = Replica{ID: fmt.Sprintf("id%d", n), Number: n, Healthy: true}
	}
	return out
}

func testFleet(r Runner) *Fleet {
	return &Fleet{Runner: r, Compose: []string{"docker", "compose"}, Project: "kvfleet", EnvFile: ".env",
		Routed: "api", StopTimeout: 30 * time.Second, ReadyTimeout: 50 * time.Millisecond, Poll: time.Millisecond}
}

func TestReplicas(t *testing.T) {
	r := &recordingRunner{respond: func(string) (string, error) {
		return "id5\t5\tUp 3 seconds (health: starting)\nid1\t1\tUp 2 hours (healthy)\nid3\t3\tUp 2 hours (unhealthy)\nid2\t2\tUp 1 minute\n", nil
	}}
	reps, err := testFleet(r).Replicas(context.Background(), "api")
	if err != nil {
		t.Fatal(err)
	}
	want := []Replica{{"id1", 1, true}, {"id2", 2, true}, {"id3", 3, false}, {"id5", 5, false}}
	if fmt.Sprint(reps) != fmt.Sprint(want) {
		t.Errorf("replicas %v, want %v", reps, want)
	}
	for _, f := range []string{"label=com.docker.compose.project=kvfleet", "label=com.docker.compose.service=api", "status=running", "oneoff=False"} {
		if !strings.Contains(r.calls[0], f) {
			t.Errorf("docker ps without filter %s: %s", f, r.calls[0])
		}
	}
	r.respond = func(string) (string, error) { return "garbage\n", nil }
	if _, err := testFleet(r).Replicas(context.Background(), "api"); err == nil {
		t.Error("unparsable docker ps output accepted")
	}
}

func TestScaleAPIUpWaitsForHealthThenReloadsNginx(t *testing.T) {
	polls := 0
	r := &recordingRunner{respond: func(cmd string) (string, error) {
		if strings.HasPrefix(cmd, "docker ps") {
			polls++
			if polls < 3 { // the new ones are still starting
				return psOutput(" (healthy)", 1, 2, 3) + psOutput(" (health: starting)", 4, 5), nil
			}
			return psOutput(" (healthy)", 1, 2, 3, 4, 5), nil
		}
		return "", nil
	}}
	f := testFleet(r)
	f.ReadyTimeout = time.Minute // never reached: the third poll sees them healthy
	if err := f.Scale(context.Background(), "api", replicas(1, 2, 3), 5); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.kinds(), " "); got != "up ps ps ps reload" {
		t.Errorf("commands %q, want up, polls until healthy, reload", got)
	}
	up := r.find(" up ")
	want := "docker compose --project-name kvfleet --env-file .env up --detach --no-recreate --no-deps --scale api=5 api"
	if up != want {
		t.Errorf("compose command\n%s\nwant\n%s", up, want)
	}
	if reload := r.find("exec"); !strings.HasSuffix(reload, "exec -T nginx nginx -c /etc/kvfleet/nginx/nginx.conf -s reload") {
		t.Errorf("reload command %q", reload)
	}
}

// A replica that never gets healthy is reported, and nginx is reloaded
// anyway so that it routes to the ones that are.
func TestScaleAPIUpReloadsEvenWhenNotHealthyInTime(t *testing.T) {
	r := &recordingRunner{respond: func(cmd string) (string, error) {
		if strings.HasPrefix(cmd, "docker ps") {
			return psOutput(" (healthy)", 1, 2, 3, 4) + psOutput(" (unhealthy)", 5), nil
		}
		return "", nil
	}}
	err := testFleet(r).Scale(context.Background(), "api", replicas(1, 2, 3), 5)
	if err == nil || !strings.Contains(err.Error(), "4 of 5 api replicas healthy") {
		t.Errorf("err = %v", err)
	}
	if k := r.kinds(); k[len(k)-1] != "reload" {
		t.Errorf("commands %v: nginx not reloaded last", k)
	}
}

// Scale-down drains: stop the highest-numbered replicas (SIGTERM, with
// the grace period), then reload nginx, then let Compose record the size.
func TestScaleAPIDownDrainsThenReloadsThenRecords(t *testing.T) {
	r := &recordingRunner{respond: func(cmd string) (string, error) {
		if strings.HasPrefix(cmd, "docker ps") {
			return psOutput(" (healthy)", 1, 2, 3), nil
		}
		return "", nil
	}}
	if err := testFleet(r).Scale(context.Background(), "api", replicas(1, 2, 3, 4, 5), 3); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.kinds(), " "); got != "stop reload up ps" {
		t.Errorf("commands %q, want stop, reload, up, and a check of the survivors", got)
	}
	if stop := r.find("docker stop"); stop != "docker stop -t 30 id4 id5" {
		t.Errorf("stop command %q, want the two highest numbers with the grace period", stop)
	}
	if up := r.find(" up "); !strings.Contains(up, "--scale api=3 api") {
		t.Errorf("compose command %q", up)
	}
}

// Compose removed another container than the one drained (a crashed
// replica with a higher number was lying around): nginx is reloaded again.
func TestScaleAPIDownReloadsAgainWhenComposeLeftOthers(t *testing.T) {
	r := &recordingRunner{respond: func(cmd string) (string, error) {
		if strings.HasPrefix(cmd, "docker ps") {
			return psOutput(" (healthy)", 1, 2, 4), nil
		}
		return "", nil
	}}
	if err := testFleet(r).Scale(context.Background(), "api", replicas(1, 2, 3, 4), 3); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.kinds(), " "); got != "stop reload up ps reload" {
		t.Errorf("commands %q", got)
	}
}

func TestScaleAPIDownStopFailureStillReloads(t *testing.T) {
	r := &recordingRunner{respond: func(cmd string) (string, error) {
		if strings.HasPrefix(cmd, "docker stop") {
			return "", errors.New("docker stop: no such container")
		}
		return "", nil
	}}
	if err := testFleet(r).Scale(context.Background(), "api", replicas(1, 2, 3, 4), 3); err == nil {
		t.Fatal("no error")
	}
	if got := strings.Join(r.kinds(), " "); got != "stop reload" {
		t.Errorf("commands %q, want stop then reload, and no compose up", got)
	}
}

// Consumers are not behind nginx: Compose stops them with their grace
// period (they finish or release their batch) and starts new ones.
func TestScaleConsumers(t *testing.T) {
	for _, to := range []int{2, 5} {
		r := &recordingRunner{respond: func(string) (string, error) { return "", nil }}
		if err := testFleet(r).Scale(context.Background(), "consumer", replicas(1, 2, 3), to); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.kinds(), " "); got != "up" {
			t.Errorf("to %d: commands %q, want only compose up", to, got)
		}
		if up := r.find(" up "); !strings.HasSuffix(up, fmt.Sprintf("--scale consumer=%d consumer", to)) {
			t.Errorf("compose command %q", up)
		}
	}
}

func TestComposeV1(t *testing.T) {
	r := &recordingRunner{respond: func(string) (string, error) { return "", nil }}
	f := testFleet(r)
	f.Compose = []string{"docker-compose"}
	if err := f.Scale(context.Background(), "consumer", replicas(1, 2), 3); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.calls[0], "docker-compose --project-name kvfleet --env-file .env up") {
		t.Errorf("command %q", r.calls[0])
	}
}

func TestFleetCheck(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	r := &recordingRunner{respond: func(string) (string, error) { return "", nil }}
	f := testFleet(r)
	f.EnvFile = envFile
	if err := f.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "./start.sh") {
		t.Errorf("missing env file: err = %v", err)
	}
	if err := os.WriteFile(envFile, []byte("X=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(context.Background()); err != nil {
		t.Errorf("err = %v", err)
	}
	r.respond = func(string) (string, error) { return "", errors.New("exec: docker: not found") }
	if err := f.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "KVFLEET_COMPOSE") {
		t.Errorf("broken compose: err = %v", err)
	}
}
