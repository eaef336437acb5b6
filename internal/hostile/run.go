package hostile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvfleet/kvfleet/internal/chaos"
	"github.com/kvfleet/kvfleet/internal/load"
)

// Report is the suite's result.
type Report struct {
	Started   time.Time        `json:"started"`
	Options   Options          `json:"options"`
	Baseline  GoodStats        `json:"baseline"`
	Scenarios []ScenarioResult `json:"scenarios"`
	// Checks are the suite-wide checks made at the end.
	Checks []Check `json:"checks"`
	Passed bool    `json:"passed"`
}

// GoodStats is what the well-behaved client saw in one phase.
type GoodStats struct {
	Requests int `json:"requests"`
	// Errors are requests a working fleet would have served; QueueFull
	// are writes refused because the queue was at its byte bound, counted
	// apart since the flood puts it there on purpose.
	Errors    int     `json:"errors"`
	QueueFull int     `json:"queue_full"`
	ErrorRate float64 `json:"error_rate"`
	P99       string  `json:"p99"`
	p99       time.Duration
}

// ScenarioResult is one attack and what it did.
type ScenarioResult struct {
	Name   string      `json:"name"`
	What   string      `json:"what"`
	Attack *tally      `json:"attack,omitempty"`
	Slow   *slowResult `json:"slow,omitempty"`
	Good   GoodStats   `json:"good_client"`
	Checks []Check     `json:"checks"`
}

// Check is one pass/fail verdict with what was measured. A check that is
// not gated is measured and reported but does not fail the suite.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Gated  bool   `json:"gated"`
	Detail string `json:"detail"`
}

func check(name string, passed bool, format string, args ...any) Check {
	return Check{Name: name, Passed: passed, Gated: true, Detail: fmt.Sprintf(format, args...)}
}

// notGated is a measurement reported beside the checks: the well-behaved
// client's p99 under an attack that saturates the host's CPU, which every
// client shares until per-client limits exist (they need API keys to tell
// clients apart: behind Docker's port proxy every client has the same
// address).
func notGated(c Check) Check {
	c.Gated = false
	return c
}

// Thresholds of the well-behaved client, from the suite's definition.
const (
	maxGoodErrorRate = 0.01
	maxP99Factor     = 3
	drainTimeout     = 3 * time.Minute
)

type runner struct {
	o        Options
	log      io.Writer
	fleet    *chaos.Fleet
	atk      *attacker
	good     *load.Client
	ledger   *load.Ledger
	goodKeys []string
	// before is every container's state when the suite started.
	before map[string]chaos.Container
	// acked are the attacks' acknowledged writes, key to version.
	ackMu sync.Mutex
	acked map[string]string
	runID string
}

var (
	consumerService = regexp.MustCompile(`^consumer$`)
	rabbitService   = regexp.MustCompile(`^rabbitmq-\d+$`)
)

// Run runs the suite against the fleet of o and returns its report; the
// error is for a suite that could not run, not for a failed check.
func Run(ctx context.Context, o Options, log io.Writer) (Report, error) {
	rep := Report{Started: time.Now().UTC(), Options: o}
	r := &runner{o: o, log: log, fleet: &chaos.Fleet{Project: o.Project}, ledger: load.NewLedger(),
		acked: map[string]string{}, runID: fmt.Sprintf("%x", time.Now().UnixNano())}
	var err error
	if r.atk, err = newAttacker(o.API); err != nil {
		return rep, err
	}
	defer r.atk.close()
	if r.good, err = load.NewClient(o.API, 10*time.Second, 64); err != nil {
		return rep, err
	}
	defer r.good.Close()

	cs, err := r.fleet.Containers(ctx, nil)
	if err != nil {
		return rep, fmt.Errorf("hostile: list the containers of project %s: %w", o.Project, err)
	}
	r.before = map[string]chaos.Container{}
	for _, c := range cs {
		if c.Status == "running" {
			r.before[c.Name] = c
		}
	}
	if consumers, _ := r.fleet.Containers(ctx, consumerService); len(consumers) == 0 {
		return rep, fmt.Errorf("hostile: project %s has no consumer container; start the fleet with ./start.sh first", o.Project)
	}
	deadBefore, err := r.queueDepth(ctx, "kvfleet.writes.dead")
	if err != nil {
		return rep, err
	}
	// Whatever happens, the consumers run again when the suite ends.
	defer func() {
		if consumers, err := r.fleet.Containers(context.WithoutCancel(ctx), consumerService); err == nil {
			_ = r.fleet.Unpause(context.WithoutCancel(ctx), consumers)
		}
	}()

	if err := r.seed(ctx); err != nil {
		return rep, err
	}
	r.logf("baseline: the well-behaved client alone for %s", o.Phase)
	rep.Baseline = r.goodPhase(ctx, "baseline", func(context.Context) {})
	r.logf("  %s", rep.Baseline)

	for _, s := range r.scenarios() {
		if ctx.Err() != nil {
			break
		}
		r.logf("%s: %s", s.name, s.what)
		res := r.runScenario(ctx, s, rep.Baseline)
		for _, c := range res.Checks {
			r.logf("  %s %s: %s", mark(c), c.Name, c.Detail)
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}

	r.logf("end: every acknowledged write is applied, none dead-lettered")
	rep.Checks = r.finalChecks(ctx, deadBefore)
	for _, c := range rep.Checks {
		r.logf("  %s %s: %s", mark(c), c.Name, c.Detail)
	}
	rep.Passed = passed(rep)
	return rep, ctx.Err()
}

// passed reports whether every gated check of rep passed.
func passed(rep Report) bool {
	all := slices.Clone(rep.Checks)
	for _, s := range rep.Scenarios {
		all = append(all, s.Checks...)
	}
	for _, c := range all {
		if c.Gated && !c.Passed {
			return false
		}
	}
	return true
}

func mark(c Check) string {
	switch {
	case c.Passed && c.Gated:
		return "PASS"
	case c.Passed:
		return "MET "
	case c.Gated:
		return "FAIL"
	}
	return "MISS"
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, format+"\n", args...)
}

func (s GoodStats) String() string {
	return fmt.Sprintf("well-behaved client: %d requests, %d errors (%.2f %%), %d refused as queue_full, p99 %s",
		s.Requests, s.Errors, 100*s.ErrorRate, s.QueueFull, s.P99)
}

// seed writes every key of the well-behaved client once, so that its reads
// find them.
func (r *runner) seed(ctx context.Context) error {
	for i := range 200 {
		r.goodKeys = append(r.goodKeys, fmt.Sprintf("hostile/%s/good/%03d", r.runID, i))
	}
	run, err := load.Start(ctx, r.good, load.Plan{Keys: r.goodKeys, WriteRate: 100, Sequential: true,
		Tag: "seed-" + r.runID, MaxInFlight: 64, MaxDuration: 10 * time.Second, ValueBytes: 64})
	if err != nil {
		return err
	}
	outcomes := run.Wait()
	if err := r.ledger.Add(outcomes); err != nil {
		return err
	}
	for _, o := range outcomes {
		if !o.Acknowledged() {
			return fmt.Errorf("hostile: seeding the well-behaved keys: a write got %d %s %s; is the fleet up?", o.Status, o.Code, o.Failure)
		}
	}
	time.Sleep(2 * time.Second) // applied, so that reads find them
	return nil
}

// goodPhase runs the well-behaved client for at least the phase length and
// for as long as attack runs, and sums up what it saw.
func (r *runner) goodPhase(ctx context.Context, tag string, attack func(context.Context)) GoodStats {
	run, err := load.Start(ctx, r.good, load.Plan{Keys: r.goodKeys, WriteRate: r.o.GoodWrites, ReadRate: r.o.GoodReads,
		Tag: tag + "-" + r.runID, ValueBytes: 64, MaxInFlight: 256, MaxDuration: 15 * time.Minute, Seed: uint64(len(tag))})
	if err != nil {
		return GoodStats{Errors: 1, P99: err.Error()}
	}
	start := time.Now()
	attack(ctx)
	select {
	case <-time.After(time.Until(start.Add(r.o.Phase))):
	case <-ctx.Done():
	}
	outcomes := run.Stop()
	_ = r.ledger.Add(outcomes)
	return goodStats(outcomes)
}

func goodStats(outcomes []load.Outcome) GoodStats {
	var s GoodStats
	var latencies []time.Duration
	for _, o := range outcomes {
		if o.Sent.IsZero() && o.Failure == "" {
			continue
		}
		s.Requests++
		switch {
		case o.Available():
		case o.Op.IsWrite() && o.Status == http.StatusServiceUnavailable && o.Code == "queue_full":
			s.QueueFull++
		default:
			s.Errors++
		}
		latencies = append(latencies, o.Latency)
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(s.Errors) / float64(s.Requests)
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		s.p99 = latencies[min(n-1, n*99/100)]
	}
	s.P99 = s.p99.Round(100 * time.Microsecond).String()
	return s
}

// scenario is one attack.
type scenario struct {
	name, what string
	// queueFullAllowed: the attack fills the queue to its bound on purpose,
	// so the well-behaved client's writes may be refused as queue_full.
	queueFullAllowed bool
	run              func(ctx context.Context, res *ScenarioResult) []Check
}

func (r *runner) runScenario(ctx context.Context, s scenario, baseline GoodStats) ScenarioResult {
	res := ScenarioResult{Name: s.name, What: s.what}
	var checks []Check
	res.Good = r.goodPhase(ctx, s.name, func(ctx context.Context) { checks = s.run(ctx, &res) })
	res.Checks = append(res.Checks, checks...)
	if res.Attack != nil {
		res.Checks = append(res.Checks, check("every refusal is a JSON error", res.Attack.NotJSON == 0,
			"%d of %d answers were errors without the JSON body; answers: %v", res.Attack.NotJSON, res.Attack.Sent, res.Attack.ByAnswer))
	}
	res.Checks = append(res.Checks,
		check("well-behaved client served", res.Good.ErrorRate <= maxGoodErrorRate,
			"%s (threshold %.0f %% errors)", res.Good, 100*maxGoodErrorRate),
		notGated(check("well-behaved client's p99", res.Good.p99 <= maxP99Factor*baseline.p99,
			"p99 %s against %s without an attack (goal %d×; not gated)", res.Good.P99, baseline.P99, maxP99Factor)))
	if res.Good.QueueFull > 0 && !s.queueFullAllowed {
		res.Checks = append(res.Checks, check("well-behaved writes not refused as queue_full", false,
			"%d writes refused", res.Good.QueueFull))
	}
	res.Checks = append(res.Checks, r.containerCheck(ctx))
	return res
}

// containerCheck fails if any container that ran when the suite started
// has been OOM-killed, restarted or stopped since.
func (r *runner) containerCheck(ctx context.Context) Check {
	cs, err := r.fleet.Containers(ctx, nil)
	if err != nil {
		return check("no container OOM-killed or restarted", false, "listing the containers: %v", err)
	}
	var bad []string
	for _, c := range cs {
		b, ok := r.before[c.Name]
		if !ok {
			continue
		}
		switch {
		case c.OOMKilled && !b.OOMKilled:
			bad = append(bad, c.Name+" OOM-killed")
		case c.Restarts > b.Restarts:
			bad = append(bad, fmt.Sprintf("%s restarted %d times", c.Name, c.Restarts-b.Restarts))
		case c.Status != "running" && c.Status != "paused":
			bad = append(bad, c.Name+" "+c.Status)
		}
	}
	return check("no container OOM-killed or restarted", len(bad) == 0, "%d containers watched; %s", len(r.before), orNone(bad))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none OOM-killed, restarted or stopped"
	}
	return strings.Join(s, ", ")
}

// withConsumersPaused runs f with the fleet's consumers frozen, as they are
// while the database is down, and lets them go again after it.
func (r *runner) withConsumersPaused(ctx context.Context, f func() []Check) []Check {
	consumers, err := r.fleet.Containers(ctx, consumerService)
	if err == nil {
		err = r.fleet.Pause(ctx, consumers)
	}
	if err != nil {
		return []Check{check("consumers paused", false, "%v", err)}
	}
	checks := f()
	if err := r.fleet.Unpause(context.WithoutCancel(ctx), consumers); err != nil {
		return append(checks, check("consumers resumed", false, "%v", err))
	}
	return append(checks, r.drained(ctx))
}

// drained waits for the write queue to empty once the consumers run again.
func (r *runner) drained(ctx context.Context) Check {
	start := time.Now()
	for {
		n, err := r.queueDepth(ctx, "kvfleet.writes")
		if err == nil && n == 0 {
			return check("backlog drained", true, "the write queue was empty %s after the consumers resumed", time.Since(start).Round(time.Second))
		}
		if time.Since(start) > drainTimeout || ctx.Err() != nil {
			return check("backlog drained", false, "%d messages still queued after %s (last error: %v)", n, drainTimeout, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// queueDepth asks a running broker node how many messages a queue holds.
func (r *runner) queueDepth(ctx context.Context, queue string) (int, error) {
	nodes, err := r.fleet.Containers(ctx, rabbitService)
	if err != nil {
		return 0, err
	}
	var lastErr error = errors.New("no running RabbitMQ node")
	for _, n := range nodes {
		if n.Status != "running" {
			continue
		}
		out, err := r.fleet.Exec(ctx, n, "rabbitmqctl", "-q", "list_queues", "name", "messages", "--formatter", "json")
		if err != nil {
			lastErr = err
			continue
		}
		return parseDepth(out, queue)
	}
	return 0, fmt.Errorf("hostile: queue depth: %w", lastErr)
}

// parseDepth reads `rabbitmqctl list_queues name messages --formatter json`.
func parseDepth(out, queue string) (int, error) {
	var rows []struct {
		Name     string `json:"name"`
		Messages int    `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return 0, fmt.Errorf("hostile: list_queues output %q: %w", out, err)
	}
	for _, q := range rows {
		if q.Name == queue {
			return q.Messages, nil
		}
	}
	return 0, nil // not declared yet: empty
}

// finalChecks: every write acknowledged to either client is visible with
// at least its version, and nothing was dead-lettered.
func (r *runner) finalChecks(ctx context.Context, deadBefore int) []Check {
	var checks []Check
	conv := load.Converge(ctx, r.good, r.ledger, 60*time.Second, 8)
	stats := r.ledger.Stats()
	checks = append(checks, check("well-behaved writes applied", conv.Converged && conv.Lost == 0 && conv.Corrupt == 0,
		"%d keys, %d acknowledged writes; %d lost, %d corrupt, %d unverified", stats.Keys, stats.Acknowledged, conv.Lost, conv.Corrupt, conv.Unverified))

	keys := make([]string, 0, len(r.acked))
	for k := range r.acked {
		keys = append(keys, k)
	}
	lost := newTally()
	var missing []string
	parallel(ctx, len(keys), 8, nil, func(i int) {
		k := keys[i]
		a := r.atk.do(ctx, http.MethodGet, "/?key="+urlQuery(k), nil, nil)
		lost.add(a)
		if a.Status != http.StatusOK || a.Version < r.acked[k] {
			lost.mu.Lock()
			missing = append(missing, fmt.Sprintf("%s (%d %s, version %s < %s)", k, a.Status, a.Code, a.Version, r.acked[k]))
			lost.mu.Unlock()
		}
	})
	checks = append(checks, check("attack writes acknowledged are applied", len(missing) == 0,
		"%d acknowledged, %d not visible with their version%s", len(keys), len(missing), firstFew(missing)))

	dead, err := r.queueDepth(ctx, "kvfleet.writes.dead")
	checks = append(checks, check("nothing dead-lettered", err == nil && dead == deadBefore,
		"dead-letter queue %d messages before, %d after (%v)", deadBefore, dead, err))
	checks = append(checks, r.containerCheck(ctx))
	return checks
}

func firstFew(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return ": " + strings.Join(s[:min(3, len(s))], "; ")
}

// WriteReport writes rep as indented JSON to path.
func WriteReport(path string, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
