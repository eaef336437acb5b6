package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// docker is a fake Docker for one project: two consumer containers and
// one API container, which docker pause and unpause freeze and thaw as
// the real one does (a paused container is not listed as running). It
// records every command; failPause and failUnpause make those fail.
type docker struct {
	mu          sync.Mutex
	calls       []string
	paused      map[string]bool
	failPause   bool
	failUnpause bool
}

func (d *docker) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := name + " " + strings.Join(args, " ")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, cmd)
	if d.paused == nil {
		d.paused = map[string]bool{}
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s: %w", cmd, ctx.Err())
	case strings.HasPrefix(cmd, "docker ps") && strings.Contains(cmd, "service=consumer"):
		var out strings.Builder
		for i, id := range []string{"c1", "c2"} {
			if !d.paused[id] {
				fmt.Fprintf(&out, "%s\t%d\tUp 5 minutes (healthy)\n", id, i+1)
			}
		}
		return []byte(out.String()), nil
	case strings.HasPrefix(cmd, "docker ps"):
		return []byte("a1\t1\tUp 5 minutes (healthy)\n"), nil
	case strings.HasPrefix(cmd, "docker pause "):
		for _, id := range args[1:] {
			d.paused[id] = true
		}
		if d.failPause {
			return nil, errors.New("docker pause: exit status 1")
		}
	case strings.HasPrefix(cmd, "docker unpause "):
		if d.failUnpause {
			return nil, errors.New("docker unpause: exit status 1")
		}
		for _, id := range args[1:] {
			delete(d.paused, id)
		}
	}
	return nil, nil
}

// commands names the calls by what they do, in order.
func (d *docker) commands() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.calls {
		switch {
		case strings.HasPrefix(c, "docker ps"):
			out = append(out, "ps")
		case strings.Contains(c, " up --detach"):
			out = append(out, "up")
		default:
			out = append(out, c)
		}
	}
	return out
}

func newFault(d *docker) (*pausedService, heldFleet) {
	fleet := &scaler.Fleet{Runner: d, Compose: []string{"docker", "compose"}, Project: "kvfleet-autoscale", EnvFile: ".env.autoscale", Routed: "api"}
	p := newPausedService(fleet, "consumer")
	return p, heldFleet{Actuator: fleet, fault: p}
}

func replicaIDs(reps []scaler.Replica) string { return strings.Join(ids(reps), " ") }

func TestPausedConsumersCountAndTheirChangesWait(t *testing.T) {
	ctx := context.Background()
	d := &docker{}
	p, held := newFault(d)
	reps, err := p.pause(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := replicaIDs(reps); got != "c1 c2" {
		t.Fatalf("paused %q, want c1 c2", got)
	}
	if ps := d.calls[0]; !strings.Contains(ps, "label=com.docker.compose.project=kvfleet-autoscale") || !strings.Contains(ps, "label=com.docker.compose.service=consumer") {
		t.Errorf("the consumers were found by %q, not by the project's and service's labels", ps)
	}
	// Paused, they are not running, but they are still the consumers.
	if got, err := held.Replicas(ctx, "consumer"); err != nil || replicaIDs(got) != "c1 c2" {
		t.Errorf("consumers while paused: %q, %v; want c1 c2", replicaIDs(got), err)
	}
	if got, _ := held.Replicas(ctx, "api"); replicaIDs(got) != "a1" {
		t.Errorf("api while the consumers are paused: %q", replicaIDs(got))
	}
	// A consumer change cannot go through while they are paused: it waits,
	// here until its context ends, and Compose is not called.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := held.Scale(cancelled, "consumer", reps, 4); err == nil || !strings.Contains(err.Error(), "the test's pause did not end") {
		t.Errorf("scale while paused: %v", err)
	}
	// The API is not held.
	if err := held.Scale(ctx, "api", []scaler.Replica{{ID: "a1", Number: 1}}, 1); err != nil {
		t.Errorf("api scale while the consumers are paused: %v", err)
	}
	if err := p.resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := held.Scale(ctx, "consumer", reps, 4); err != nil {
		t.Fatal(err)
	}
	want := "ps docker pause c1 c2 ps ps docker unpause c1 c2 up"
	if got := strings.Join(d.commands(), " "); got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	if got, _ := held.Replicas(ctx, "consumer"); replicaIDs(got) != "c1 c2" {
		t.Errorf("consumers after the pause: %q", replicaIDs(got))
	}
}

func TestResumeUnpausesOnceEvenAfterAnInterruption(t *testing.T) {
	d := &docker{failUnpause: true}
	p, held := newFault(d)
	if _, err := p.pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The run was interrupted: the unpause must run all the same.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first := p.resume(ctx)
	if first == nil || !strings.Contains(first.Error(), "unpausing the consumer containers: docker unpause: exit status 1") {
		t.Fatalf("resume: %v", first)
	}
	if again := p.resume(ctx); again != first {
		t.Errorf("second resume: %v, want the first's error", again)
	}
	if n := strings.Count(strings.Join(d.commands(), "\n"), "docker unpause"); n != 1 {
		t.Errorf("%d unpauses, want 1", n)
	}
	// The pause is over, whatever the unpause said: changes are not held.
	if err := held.Scale(context.Background(), "consumer", nil, 3); err != nil {
		t.Errorf("scale after the pause: %v", err)
	}
}

func TestAFailedPauseIsUndone(t *testing.T) {
	d := &docker{failPause: true}
	p, held := newFault(d)
	_, err := p.pause(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pausing the consumer containers") {
		t.Fatalf("pause: %v", err)
	}
	if got := strings.Join(d.commands(), " "); got != "ps docker pause c1 c2 docker unpause c1 c2" {
		t.Errorf("commands %q: the half-done pause was not undone", got)
	}
	if err := p.resume(context.Background()); err != nil {
		t.Errorf("resume after a failed pause: %v", err)
	}
	if err := held.Scale(context.Background(), "consumer", nil, 3); err != nil {
		t.Errorf("scale after a failed pause: %v", err)
	}
}

func TestNothingToPause(t *testing.T) {
	d := &docker{paused: map[string]bool{"c1": true, "c2": true}}
	p, _ := newFault(d)
	if _, err := p.pause(context.Background()); err == nil || !strings.Contains(err.Error(), "no running consumer container") {
		t.Errorf("pause: %v", err)
	}
	if got := strings.Join(d.commands(), " "); got != "ps" {
		t.Errorf("commands %q", got)
	}
}

// backlogs answers the backlog query with one value after another (the
// last one again when they run out); "none" is no samples, "bad" a
// rejected query. cancel, if set, is called at the call numbered cancelAt.
type backlogs struct {
	values   []string
	calls    int
	cancelAt int
	cancel   func()
}

func (b *backlogs) Query(context.Context, string) ([]scaler.Sample, error) {
	b.calls++
	if b.cancel != nil && b.calls == b.cancelAt {
		b.cancel()
	}
	v := b.values[min(b.calls, len(b.values))-1]
	switch v {
	case "none":
		return nil, nil
	case "bad":
		return nil, errors.New("prometheus: bad_data: parse error")
	}
	var f float64
	if _, err := fmt.Sscan(v, &f); err != nil {
		panic(err)
	}
	return []scaler.Sample{{Value: f}}, nil
}

func TestAwaitBacklog(t *testing.T) {
	ctx := context.Background()
	// The bound is reached at the fourth read.
	q := &backlogs{values: []string{"none", "900", "2500", "4100", "9000"}}
	w, err := awaitBacklog(ctx, q, "backlog", 4000, 1<<40, 0)
	if err != nil || !w.Reached || w.Peak != 4100 || w.Problem != "" || q.calls != 4 {
		t.Errorf("reached: %+v, %v after %d reads", w, err, q.calls)
	}
	// The time bound passes first: what was read is kept.
	w, err = awaitBacklog(ctx, &backlogs{values: []string{"1500"}}, "backlog", 4000, 0, 0)
	if err != nil || w.Reached || w.Peak != 1500 {
		t.Errorf("time bound: %+v, %v", w, err)
	}
	// Nothing could be read: why is kept.
	w, _ = awaitBacklog(ctx, &backlogs{values: []string{"bad"}}, "backlog", 4000, 0, 0)
	if w.Reached || w.Problem != "prometheus: bad_data: parse error" {
		t.Errorf("unreadable: %+v", w)
	}
	// An interrupted run ends the wait with its error.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err = awaitBacklog(cctx, &backlogs{values: []string{"100", "200"}, cancelAt: 2, cancel: cancel}, "backlog", 4000, 1<<40, 0)
	if !errors.Is(err, context.Canceled) || w.Peak != 200 {
		t.Errorf("interrupted: %+v, %v", w, err)
	}
}

func TestBacklogPhase(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sched, err := ScheduleFor(ModeQuick)
	if err != nil {
		t.Fatal(err)
	}
	clock := 0.0
	since := func() float64 { clock += 10; return clock }

	// The scaler answers at its third look: the pause lasts until then,
	// whatever the backlog did before.
	d := &docker{}
	p, _ := newFault(d)
	started := false
	looks := 0
	answered := func(from float64) bool {
		if from != 10 {
			t.Errorf("answer looked for from t=%g, want the pause's start (10)", from)
		}
		if slices.Contains(d.commands(), "docker unpause c1 c2") {
			t.Error("consumers unpaused before the scaler answered")
		}
		looks++
		return looks == 3
	}
	phase := backlogPhase{pause: p, prom: &backlogs{values: []string{"4200"}}, query: "backlog", target: 500,
		sched: sched, since: since, log: quiet, answered: answered,
		writes: func() *saturation { started = true; return &saturation{stop: make(chan struct{})} }}
	f, interrupted := phase.run(context.Background())
	want := Fault{PausedAt: 10, AnsweredAt: 20, ResumedAt: 30, Consumers: 2, Bound: 4000, Peak: 4200, Reached: true, Answered: true}
	if interrupted || f != want || !started || looks != 3 {
		t.Errorf("phase: %+v (interrupted %v, writes started %v, %d looks), want %+v", f, interrupted, started, looks, want)
	}
	if got := strings.Join(d.commands(), " "); got != "ps docker pause c1 c2 docker unpause c1 c2" {
		t.Errorf("commands %q", got)
	}
	notes := strings.Join(faultNotes(f, 192, 500), "\n")
	for _, w := range []string{"induced fault", "held the 2 consumer containers paused (docker pause)", "192 clients sent only writes",
		"standing for consumers that fall behind", "peaked at 4200 messages (bound 4000: 4 × the target of 500 per consumer); the bound was reached",
		"held until the scaler had decided to scale the consumers up (t=20 s)"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes %q do not say %q", notes, w)
		}
	}

	// A scaler that never answers: the pause ends after AnswerMax, and the
	// notes say that it did not answer.
	clock = 0
	d = &docker{}
	p, _ = newFault(d)
	phase.pause = p
	phase.sched.AnswerMax = 0
	phase.answered = func(float64) bool { return false }
	f, interrupted = phase.run(context.Background())
	if interrupted || f.Answered || f.ResumedAt != 30 || !slices.Contains(d.commands(), "docker unpause c1 c2") {
		t.Errorf("unanswered phase: %+v (interrupted %v), commands %q", f, interrupted, d.commands())
	}
	if notes := strings.Join(faultNotes(f, 192, 500), "\n"); !strings.Contains(notes, "held until t=20 s without the scaler deciding to scale the consumers up") {
		t.Errorf("notes of an unanswered pause: %q", notes)
	}

	// An interrupted run stops waiting for the answer and still unpauses.
	d = &docker{}
	p, _ = newFault(d)
	phase.pause = p
	phase.sched.AnswerMax = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	phase.answered = func(float64) bool { cancel(); return false }
	phase.poll = time.Hour
	if _, interrupted = phase.run(ctx); !interrupted || !slices.Contains(d.commands(), "docker unpause c1 c2") {
		t.Errorf("interrupted phase: interrupted %v, commands %q", interrupted, d.commands())
	}
	phase.poll = 0

	// A pause that fails sends no writes and says why.
	d = &docker{failPause: true}
	p, _ = newFault(d)
	started = false
	phase.pause = p
	f, _ = phase.run(context.Background())
	if f.PausedAt != 0 || !strings.Contains(f.Err, "pausing the consumer containers") || started {
		t.Errorf("failed pause: %+v, writes started %v", f, started)
	}
	if notes := faultNotes(f, 192, 500); len(notes) != 1 || !strings.HasPrefix(notes[0], "the backlog phase did not run: pausing") {
		t.Errorf("notes of a failed pause: %q", notes)
	}
}
