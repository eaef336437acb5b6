package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

// Tuning of the phases around the load.
const (
	// convergeParallel is how many keys are read back at a time.
	convergeParallel = 8
	// injectBound bounds how long an Inject may take (the consumers are
	// killed three times with pauses).
	injectBound = 3 * time.Minute
)

// Run runs the scenarios o selects against the fleet and returns the
// report. The error is for a run that could not start at all (no fleet, a
// bad address); a scenario that fails is in the report.
func Run(ctx context.Context, o Options, log *slog.Logger) (Report, error) {
	scenarios, err := o.scenarios()
	if err != nil {
		return Report{}, err
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	r := Report{
		Started: time.Now(), BaseURL: o.BaseURL, Project: o.Project, Schedule: o.Schedule,
		WriteRate: o.WriteRate, ReadRate: o.ReadRate, Keys: o.Keys, DeleteFraction: o.DeleteFraction, Seed: o.Seed,
	}
	if len(o.Scenarios) > 0 {
		r.Schedule += " (" + strings.Join(o.Scenarios, ",") + ")"
	}
	client, err := load.NewClient(o.BaseURL, o.RequestTimeout, 64)
	if err != nil {
		return r, err
	}
	defer client.Close()
	fleet := &Fleet{Project: o.Project, Compose: o.Compose, EnvFile: o.EnvFile}
	if err := preflight(ctx, fleet, client, o); err != nil {
		return r, err
	}
	if slices.ContainsFunc(scenarios, func(s Scenario) bool { return s.Name == "redis-master-isolate" }) {
		note, err := EnsureIptables(ctx)
		if err != nil {
			return r, err
		}
		if note != "" {
			log.Info(note)
			r.Notes = append(r.Notes, note)
		}
	}
	stopNotice := context.AfterFunc(ctx, func() {
		log.Warn("interrupted: healing the fault in place, then stopping (interrupt again to quit at once, leaving it in place)")
	})
	defer stopNotice()
	// Keys and values carry the run's start time, so that no two runs share
	// a key, whatever their seeds.
	run := runner{o: o, client: client, fleet: fleet, log: log, id: fmt.Sprintf("%x", r.Started.UnixMilli())}
	for i, s := range scenarios {
		if ctx.Err() != nil {
			break
		}
		log.Info("scenario", "name", s.Name, "of", fmt.Sprintf("%d/%d", i+1, len(scenarios)), "description", s.Description)
		res := run.scenario(ctx, s)
		log.Info("scenario done", "name", s.Name, "pass", res.Pass)
		r.Scenarios = append(r.Scenarios, res)
	}
	r.Finished = time.Now()
	r.Pass = len(r.Scenarios) == len(scenarios) && !slices.ContainsFunc(r.Scenarios, func(s Result) bool { return !s.Pass })
	if ctx.Err() != nil {
		r.Notes = append(r.Notes, "interrupted: the remaining scenarios did not run")
	}
	return r, nil
}

// preflight checks that the fleet is there: containers of the project, and
// nginx answering on the base URL.
func preflight(ctx context.Context, f *Fleet, c *load.Client, o Options) error {
	if _, err := docker(ctx, commandTimeout, "version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Errorf("chaos: the Docker engine is not reachable: %w", err)
	}
	if _, err := f.running(ctx, serviceNginx); err != nil {
		return fmt.Errorf("chaos: no running fleet in Compose project %q (start it with ./start.sh, or set -project / KVFLEET_PROJECT): %w", o.Project, err)
	}
	out := c.Do(ctx, load.Request{Op: load.OpGet, Key: "kvfleet-chaos-preflight", Intended: time.Now()})
	if out.Status != http.StatusOK && out.Status != http.StatusNotFound {
		return fmt.Errorf("chaos: %s does not answer like the kvfleet API (GET: %s); is -url right?", o.BaseURL, out.Kind())
	}
	return nil
}

type runner struct {
	o      Options
	client *load.Client
	fleet  *Fleet
	log    *slog.Logger
	id     string // distinguishes this run's keys and values from any other's
}

// scenario runs one scenario: ready gate, seeding, load with the fault
// injected and healed, convergence, thresholds.
func (r *runner) scenario(ctx context.Context, s Scenario) (res Result) {
	res = Result{Name: s.Name, Description: s.Description}
	defer func() { res.Pass = res.Error == "" && Passed(res.Checks) }()

	if took, err := r.fleet.WaitReady(ctx, r.o.ReadyTimeout); err != nil {
		res.Error = "the fleet was not ready before the scenario: " + err.Error()
		return res
	} else if took > time.Second {
		r.log.Info("fleet ready", "waited", took.Round(time.Second))
	}
	keys := make([]string, r.o.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("chaos-%s-%s-%04d", r.id, s.Name, i)
	}
	tag := "chaos-" + r.id + "/" + s.Name
	ledger := load.NewLedger()

	// Seed every key once and wait until all read back: each key then has
	// an acknowledged write and a cache entry before the fault.
	seed, err := load.Start(ctx, r.client, load.Plan{
		Keys: keys, WriteRate: r.o.WriteRate, ValueBytes: r.o.ValueBytes, Tag: tag + "/seed",
		MaxInFlight: r.o.MaxInFlight, MaxDuration: time.Duration(len(keys)/r.o.WriteRate+30) * time.Second,
		Sequential: true, Seed: r.o.Seed,
	})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if err := ledger.Add(seed.Wait()); err != nil {
		res.Error = err.Error()
		return res
	}
	if conv := load.Converge(ctx, r.client, ledger, r.o.ConvergeTimeout, convergeParallel); !conv.Converged {
		res.Ledger = ledger.Stats()
		res.Convergence = convergence(conv, 0)
		res.Error = fmt.Sprintf("the seeded keys did not converge before the fault (%d lost, %d unexplained, %d unread): the fleet is not healthy", conv.Lost, conv.Corrupt, conv.Unverified)
		return res
	}

	run, err := load.Start(ctx, r.client, load.Plan{
		Keys: keys, WriteRate: r.o.WriteRate, ReadRate: r.o.ReadRate, DeleteFraction: r.o.DeleteFraction,
		ValueBytes: r.o.ValueBytes, Tag: tag + "/load", MaxInFlight: r.o.MaxInFlight,
		MaxDuration: s.Before + s.Hold + s.After + injectBound + 2*r.o.HealTimeout, Seed: r.o.Seed + 1,
	})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	t0 := run.Started()
	event := func(what string) {
		res.Events = append(res.Events, Event{At: round(time.Since(t0).Seconds(), 1), What: what})
		r.log.Info(what, "scenario", s.Name, "at", time.Since(t0).Round(100*time.Millisecond))
	}
	event(fmt.Sprintf("load started: %d writes/s, %d reads/s", r.o.WriteRate, r.o.ReadRate))
	healSecond := -1
	_ = sleep(ctx, s.Before)
	if s.Fault != nil && ctx.Err() == nil {
		healSecond = r.fault(ctx, s, s.Fault(), t0, event, &res)
	}
	_ = sleep(ctx, s.After)
	outcomes := run.Stop()
	stopped := time.Now()
	event("load stopped")
	if err := ledger.Add(outcomes); err != nil {
		res.Error = err.Error()
		return res
	}
	convStart := time.Now()
	conv := load.Converge(ctx, r.client, ledger, r.o.ConvergeTimeout, convergeParallel)
	took := convStart.Sub(stopped) + conv.Took
	if conv.Converged {
		event(fmt.Sprintf("every key converged (%d keys)", conv.Keys))
	} else {
		event("not every key converged")
	}
	if ctx.Err() != nil && res.Error == "" {
		res.Error = "interrupted"
	}

	th := s.Thresholds
	writes := load.PerSecond(outcomes, t0, true)
	reads := load.PerSecond(outcomes, t0, false)
	res.Writes = stream(outcomes, writes, true, th.MinAvailability)
	res.Reads = stream(outcomes, reads, false, th.MinAvailability)
	res.AckLatency = latency(load.Latencies(outcomes, load.Outcome.Acknowledged))
	res.ReadLatency = latency(load.Latencies(outcomes, func(o load.Outcome) bool { return o.Op == load.OpGet && o.Available() }))
	res.Ledger = ledger.Stats()
	res.Convergence = convergence(conv, took)
	errorsSeen := 0
	for _, o := range outcomes {
		if o.ServerError() || o.Failure == load.FailClientLimit {
			errorsSeen++
		}
	}
	res.Checks = Evaluate(th, Measures{
		Writes: writes, Reads: reads, HealSecond: healSecond, Errors: errorsSeen,
		Converged: conv.Converged, ConvergeTook: took,
		Lost: conv.Lost, Corrupt: conv.Corrupt, Unverified: conv.Unverified, Flapped: conv.Flapped,
	}, r.o.ConvergeTimeout)
	return res
}

// fault injects, holds, heals and waits for the fleet to be ready again,
// recording each step; it returns the second of the run in which the heal
// started. The heal runs even when the run is interrupted.
func (r *runner) fault(ctx context.Context, s Scenario, f Fault, t0 time.Time, event func(string), res *Result) int {
	event("injecting the fault")
	injectCtx, cancel := context.WithTimeout(ctx, injectBound)
	msg, err := f.Inject(injectCtx, r.fleet)
	cancel()
	switch {
	case err != nil:
		event("inject FAILED: " + join(msg, err.Error()))
		res.Error = "the fault could not be injected: " + err.Error()
	default:
		event(msg)
		_ = sleep(ctx, s.Hold)
	}
	healCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*r.o.HealTimeout)
	defer cancel()
	healSecond := int(time.Since(t0) / time.Second)
	event("healing")
	msg, err = f.Heal(healCtx, r.fleet)
	if err != nil {
		event("heal FAILED: " + err.Error())
		res.Error = join(res.Error, "the heal failed: "+err.Error())
		return healSecond
	}
	event("heal: " + msg)
	took, err := r.fleet.WaitReady(healCtx, r.o.HealTimeout)
	if err != nil {
		event("the fleet was not ready again: " + err.Error())
		res.Error = join(res.Error, "the fleet was not ready again after the heal: "+err.Error())
		return healSecond
	}
	event(fmt.Sprintf("every container ready again (%.1fs after the heal)", took.Seconds()))
	return healSecond
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func convergence(c load.Convergence, took time.Duration) ConvergenceResult {
	return ConvergenceResult{
		Converged: c.Converged, Seconds: round(took.Seconds(), 2), Keys: c.Keys, Passed: c.Passed,
		Lost: c.Lost, Corrupt: c.Corrupt, Unverified: c.Unverified, Flapped: c.Flapped, Problems: c.Problems,
	}
}

// WriteSchedule describes the scenarios o selects: phases and thresholds.
func WriteSchedule(w io.Writer, o Options) error {
	scenarios, err := o.scenarios()
	if err != nil {
		return err
	}
	var total time.Duration
	for _, s := range scenarios {
		total += s.Before + s.Hold + s.After
		fmt.Fprintf(w, "%s: %s\n", s.Name, s.Description)
		if s.Fault == nil {
			fmt.Fprintf(w, "    load %v, no fault\n", s.Before)
		} else {
			fmt.Fprintf(w, "    load %v before the fault, fault held %v, %v after the fleet is ready again\n", s.Before, s.Hold, s.After)
		}
		for _, c := range Evaluate(s.Thresholds, Measures{HealSecond: -1}, o.ConvergeTimeout) {
			fmt.Fprintf(w, "    must: %s: %s\n", c.Name, c.Limit)
		}
	}
	fmt.Fprintf(w, "%d scenarios, %v of load plus seeding, healing and convergence\n", len(scenarios), total)
	return nil
}

// ErrFailed is returned by callers when the report says a scenario failed.
var ErrFailed = errors.New("chaos: a scenario failed")
