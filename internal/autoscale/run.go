package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
	"github.com/kvfleet/kvfleet/internal/scaler"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrFailed is returned by callers when a check failed.
var ErrFailed = errors.New("autoscale: a check failed")

// scalerArgs are the scaler's settings for a run: the schedule's timings
// as flags, everything else (limits, targets) from the environment, the
// env file or the scaler's defaults, exactly as ./monitor-scale.sh reads
// them.
func scalerArgs(o Options) []string {
	s := o.Schedule
	args := []string{
		"--project", o.Project, "--env-file", o.EnvFile, "--compose", strings.Join(o.Compose, " "),
		"--interval", s.Interval.String(), "--cooldown", s.Cooldown.String(),
		"--down-window", s.DownWindow.String(), "--signal-window", s.SignalWindow.String(),
	}
	if o.PrometheusURL != "" {
		args = append(args, "--prometheus-url", o.PrometheusURL)
	}
	return args
}

// Run runs the schedule against the fleet and returns the report. The
// error is for a run that could not start (no fleet, a bad setting); a
// check that fails is in the report. scalerLog receives the scaler's own
// decision lines.
func Run(ctx context.Context, o Options, getenv func(string) string, readFile func(string) ([]byte, error), log, scalerLog *slog.Logger) (Report, error) {
	cfg, err := scaler.LoadConfig(scalerArgs(o), getenv, readFile)
	if err != nil {
		return Report{}, err
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	client, err := load.NewClient(o.BaseURL, o.RequestTimeout, o.Concurrency+64)
	if err != nil {
		return Report{}, err
	}
	defer client.Close()
	if out := client.Do(ctx, load.Request{Op: load.OpGet, Key: "kvfleet-autoscale-preflight", Intended: time.Now()}); out.Status != http.StatusOK && out.Status != http.StatusNotFound {
		return Report{}, fmt.Errorf("autoscale: %s does not answer like the kvfleet API (GET: %s); is the fleet up and -url right?", o.BaseURL, out.Kind())
	}
	prom, err := scaler.NewPrometheus(cfg.PrometheusURL, cfg.QueryTimeout)
	if err != nil {
		return Report{}, err
	}
	fleet := &scaler.Fleet{Runner: scaler.ExecRunner{}, Compose: cfg.Compose, Project: cfg.Project, EnvFile: cfg.EnvFile,
		Routed: "api", StopTimeout: cfg.StopTimeout, ReadyTimeout: cfg.ReadyTimeout, Poll: time.Second}
	mins := map[string]int{"api": cfg.APIMin, "consumer": cfg.ConsumerMin}
	if err := checkStartsAtMinimum(ctx, fleet, cfg.Project, mins); err != nil {
		return Report{}, err
	}
	id := fmt.Sprintf("%x", time.Now().UnixMilli())
	loadKeys := keys("autoscale-"+id+"-load", o.Keys)
	if err := seed(ctx, client, o, loadKeys, "autoscale-"+id+"/seed", log); err != nil {
		return Report{}, err
	}
	// The seeding must not show in the signals the scaler starts with.
	if err := sleep(ctx, cfg.SignalWindow); err != nil {
		return Report{}, err
	}

	started := time.Now()
	rec := newRecorder(started)
	consumers := newPausedService(fleet, "consumer")
	s := scaler.New(scaler.Settings{
		Services:   scaler.Services(cfg),
		Prometheus: prom,
		Fleet:      heldFleet{Actuator: fleet, fault: consumers},
		Interval:   cfg.Interval,
		Now:        time.Now,
		Logger:     scalerLog,
		Observer:   rec,
	}, prometheus.NewRegistry())
	if err := s.Check(ctx); err != nil {
		return Report{}, err
	}

	r := Report{
		Schema: Schema, Started: started, Mode: o.Schedule.Mode, BaseURL: o.BaseURL, Project: o.Project,
		Machine:  Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()},
		Settings: settingsOf(cfg),
		Load: LoadShape{Concurrency: o.Concurrency, WriteFraction: o.WriteFraction, ValueBytes: o.ValueBytes, Keys: o.Keys,
			TricklePerS: o.TrickleRate, RequestTimeoutS: o.RequestTimeout.Seconds(), Seed: o.Seed},
	}
	t := newTally(started)
	since := func() float64 { return time.Since(started).Seconds() }

	// The scaler runs from the start, as it would beside a fleet: its
	// history begins with the idle phase.
	scalerCtx, stopScaler := context.WithCancel(ctx)
	var scaling sync.WaitGroup
	scaling.Go(func() { s.Run(scalerCtx) })
	defer func() { stopScaler(); scaling.Wait() }()
	// Whatever ends the run, the consumers are not left paused. This runs
	// before the scaler is stopped (defers run last first), which frees a
	// consumer change held for the pause. The backlog phase resumes them
	// itself and records the error; this call only repeats its result, or
	// covers a way out that has no report to put an error in.
	defer func() { _ = consumers.resume(ctx) }()

	sched := o.Schedule
	trickleKeys := keys("autoscale-"+id+"-trickle", 200)
	trickle, err := load.Start(ctx, client, load.Plan{
		Keys: trickleKeys, WriteRate: o.TrickleRate / 2, ReadRate: o.TrickleRate - o.TrickleRate/2,
		ValueBytes: o.ValueBytes, Tag: "autoscale-" + id + "/trickle", MaxInFlight: 64,
		MaxDuration: sched.Bound() + time.Minute, Seed: o.Seed,
	})
	if err != nil {
		return r, err
	}
	log.Info("idle", "for", sched.Idle, "trickle_per_s", o.TrickleRate)
	interrupted := sleep(ctx, sched.Idle) != nil

	stepAt := since()
	if !interrupted {
		log.Info("load step", "concurrency", o.Concurrency, "write_fraction", o.WriteFraction, "for", sched.Load)
		sat := saturate(ctx, client, t, o, loadKeys, "autoscale-"+id+"/load", sched.Load+time.Minute)
		interrupted = sleep(ctx, sched.Load) != nil
		sat.Stop()
	}
	backlogAt := since()
	var fault Fault
	if !interrupted {
		writes := o
		writes.WriteFraction = 1
		phase := backlogPhase{
			pause: consumers, prom: prom, query: scaler.ConsumerSampler{Queue: cfg.Queue}.BacklogQuery(),
			target: cfg.ConsumerBacklogTarget, sched: sched, since: since, log: log, poll: time.Second,
			writes: func() *saturation {
				return saturate(ctx, client, t, writes, loadKeys, "autoscale-"+id+"/backlog", sched.PauseMax+sched.AnswerMax+time.Minute)
			},
			answered: func(from float64) bool { return rec.decidedUp("consumer", from) },
		}
		fault, interrupted = phase.run(ctx)
	}
	loadEnd := since()

	// Cool-down: the trickle goes on until both services are back at
	// their minimum (and one more interval, for the timeline to show it),
	// or the window plus a margin has passed.
	if !interrupted {
		log.Info("load removed; waiting for the minimum", "down_window", sched.DownWindow, "at_most", sched.DownWindow+sched.CoolMargin)
		deadline := time.Now().Add(sched.DownWindow + sched.CoolMargin)
		for !rec.settled(mins) && time.Now().Before(deadline) && !interrupted {
			interrupted = sleep(ctx, time.Second) != nil
		}
		if !interrupted {
			interrupted = sleep(ctx, sched.Interval+time.Second) != nil
		}
	}
	end := since()
	for _, out := range trickle.Stop() {
		t.add(out)
	}
	// Stop the scaler between decisions: the cool-down ended with no
	// change under way, and a cancelled query only ends its interval.
	stopScaler()
	scaling.Wait()
	r.Finished = time.Now()

	intervals, changes := rec.snapshot()
	t.mu.Lock()
	record := Record{
		Limits: Limits{Interval: cfg.Interval, Cooldown: cfg.Cooldown, DownWindow: cfg.DownWindow, SignalWindow: cfg.SignalWindow,
			StepWindow: sched.StepWindow, APIMin: cfg.APIMin, ConsumerMin: cfg.ConsumerMin, Tolerance: cfg.Tolerance,
			BacklogTarget: cfg.ConsumerBacklogTarget},
		StepAt: stepAt, BacklogAt: backlogAt, LoadEnd: loadEnd, End: end, Fault: fault,
		Intervals: intervals, Changes: changes, Seconds: t.seconds, Failures: t.failures,
	}
	r.Requests = Requests{Failed: t.failed, Errors: t.kinds}
	for _, sec := range t.seconds {
		r.Requests.Sent += sec.Offered
		r.Requests.OK += sec.OK
	}
	for _, f := range t.failures {
		r.Requests.Failures = append(r.Requests.Failures, FailureJSON(f))
	}
	if t.failed > len(t.failures) {
		r.Notes = append(r.Notes, fmt.Sprintf("%d failures; the first %d are listed", t.failed, len(t.failures)))
	}
	t.mu.Unlock()

	r.Notes = append(r.Notes, faultNotes(record.Fault, o.Concurrency, cfg.ConsumerBacklogTarget)...)
	r.Phases = phases(record, sched, o, t)
	r.Timeline = Timeline(record, cfg.APICPUCores)
	r.Decisions = decisions(changes)
	r.Checks = Evaluate(record)
	r.Pass = Passed(r.Checks) && !interrupted
	if interrupted {
		r.Notes = append(r.Notes, "interrupted: the schedule did not run to its end")
	}
	return r, nil
}

// seedClients is how many clients write the load's keys before the run,
// each its next key as soon as the last was acknowledged: as fast as the
// fleet takes them, without the backlog an open-loop burst would leave.
const seedClients = 16

// seed writes every key of the load once, before the run: the load's
// reads then find their keys in the cache, as a working key space's do,
// instead of sending a storm of misses for keys never written to the
// database at the step (which, on a small machine, times some of them out:
// a failure of the test's setup, not of the scaler).
func seed(ctx context.Context, client *load.Client, o Options, keys []string, tag string, log *slog.Logger) error {
	log.Info("seeding the load's keys", "keys", len(keys), "clients", seedClients)
	next := make(chan int)
	var mu sync.Mutex
	kinds := map[string]int{}
	var clients sync.WaitGroup
	for range seedClients {
		clients.Go(func() {
			for i := range next {
				out := client.Do(ctx, load.Request{Op: load.OpPut, Key: keys[i], Value: padded(tag+":"+strconv.Itoa(i), o.ValueBytes), Intended: time.Now()})
				if !out.Acknowledged() {
					mu.Lock()
					kinds[out.Kind()]++
					mu.Unlock()
				}
			}
		})
	}
	for i := range keys {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	clients.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(kinds) > 0 {
		return fmt.Errorf("autoscale: seeding the load's keys: writes not acknowledged (%v): the fleet is not healthy", kinds)
	}
	return nil
}

// phaseBacklog names the backlog phase wherever the phases are listed (the
// JSON, the summary, the rendered report), so that no reader takes its
// backlog for one the load made by itself.
const phaseBacklog = "backlog: only writes, consumers paused (induced fault)"

// phases describes the schedule as it ran, with the traffic measured in
// each phase.
func phases(r Record, s Schedule, o Options, t *tally) []Phase {
	stepEnd := min(r.StepAt+s.StepWindow.Seconds(), r.BacklogAt)
	out := []Phase{
		{Name: "idle", StartS: 0, EndS: r.StepAt},
		{Name: "step", StartS: r.StepAt, EndS: stepEnd, Concurrency: o.Concurrency},
		{Name: "steady", StartS: stepEnd, EndS: r.BacklogAt, Concurrency: o.Concurrency},
	}
	if r.Fault.PausedAt > 0 {
		out = append(out, Phase{Name: phaseBacklog, StartS: r.BacklogAt, EndS: r.LoadEnd, Concurrency: o.Concurrency})
	}
	out = append(out, Phase{Name: "cool", StartS: r.LoadEnd, EndS: r.End})
	for i := range out {
		p := &out[i]
		sent := 0
		for sec := int(p.StartS); sec < int(p.EndS) && sec < len(r.Seconds); sec++ {
			sent += r.Seconds[sec].Offered
		}
		if whole := int(p.EndS) - int(p.StartS); whole > 0 {
			p.OfferedPerS = round(float64(sent)/float64(whole), 1)
		}
		p.Latency = t.latency(p.StartS, p.EndS)
		p.StartS, p.EndS = round(p.StartS, 3), round(p.EndS, 3)
	}
	return out
}

func settingsOf(c scaler.Config) Settings {
	return Settings{
		IntervalS: c.Interval.Seconds(), CooldownS: c.Cooldown.Seconds(), DownWindowS: c.DownWindow.Seconds(),
		SignalWindowS: c.SignalWindow.Seconds(), Tolerance: c.Tolerance,
		APIMin: c.APIMin, APIMax: c.APIMax, ConsumerMin: c.ConsumerMin, ConsumerMax: c.ConsumerMax,
		APICPUTarget: c.APICPUTarget, APICPUCores: c.APICPUCores, APIInFlightTarget: c.APIInFlightTarget,
		ConsumerBacklogTarget: c.ConsumerBacklogTarget,
	}
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
