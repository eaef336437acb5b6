package bench

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The key spaces of a run. They are the same every run, so the rows the
// benchmark leaves in the database stay bounded (-keys, -put-keys and
// -backlog-messages rows); only the uncached reads use new keys, which
// are never written.
const (
	getKeyBase   = "bench/get/"
	putKeyBase   = "bench/put/"
	missKeyBase  = "bench/miss/"
	drainKeyBase = "bench/drain/"
)

// runner is one run of the benchmark.
type runner struct {
	o          Options
	log        *slog.Logger
	runID      string
	docker     *Docker
	acct       *Accounting
	result     *Result
	fleet      []Container
	nginxImage string
	tempDirs   []string
	api        *Client // the fleet, for the load
	probe      *Client // the fleet, for the lag sampler and checks
	watch      *depthWatch

	refIDs  []string // the reference's containers
	stopMem func()   // stops the memory sampler and waits for it

	memMu sync.Mutex
	mem   map[string]memPeak // by container id
}

type memPeak struct {
	service    string
	rss, usage uint64
}

// Run measures the fleet as o says and returns the result, also when a
// part failed (the failure is then in Notes and in the error).
func Run(ctx context.Context, o Options, log *slog.Logger) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.MaxRun)
	defer cancel()
	env, err := ReadEnvFile(o.EnvFile)
	if err != nil {
		return nil, err
	}
	b := &runner{o: o, log: log, runID: newRunID(), mem: map[string]memPeak{}}
	b.result = &Result{Schema: Schema, Started: time.Now().UTC().Truncate(time.Second), Mode: o.Mode(),
		Target: o.BaseURL, Project: o.Project, Method: method(o)}
	b.docker = NewDocker(b.runID, []string{
		envAMQP + "=" + amqpURLs(env["KVFLEET_RABBITMQ_PASSWORD"]),
		envRedisPassword + "=" + env["KVFLEET_REDIS_PASSWORD"],
		envSentinelPassword + "=" + env["KVFLEET_REDIS_SENTINEL_PASSWORD"],
	})
	b.nginxImage = o.NginxImage
	if b.nginxImage == "" {
		b.nginxImage = env["KVFLEET_NGINX_IMAGE"]
	}
	b.acct = NewAccounting("/sys/fs/cgroup", "/proc", 0)
	defer b.cleanup(ctx)

	if err := b.prepare(ctx, env); err != nil {
		return nil, err
	}
	b.acct.cores = b.result.Machine.Cores
	err = b.phases(ctx)
	b.result.Memory = b.memory()
	b.result.Conditions.LoadAvgAfter = loadAvg()
	b.result.Conditions.Warnings = append(b.result.Conditions.Warnings, Disturbances(b.result)...)
	b.result.Ratios = Ratios(b.result)
	b.result.Goals = Goals(b.result)
	b.result.Finished = time.Now().UTC().Truncate(time.Second)
	return b.result, err
}

// prepare checks what the run needs and records the machine and the
// conditions.
func (b *runner) prepare(ctx context.Context, env map[string]string) error {
	api, err := NewClient(b.o.BaseURL, b.o.Workers, b.o.Timeout)
	if err != nil {
		return err
	}
	b.api = api
	if b.probe, err = NewClient(b.o.BaseURL, 64, 2*time.Second); err != nil {
		return err
	}
	if _, err := b.docker.command(ctx, 30*time.Second, "version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Errorf("bench: Docker is needed to account CPU and run the reference: %w", err)
	}
	if b.fleet, err = b.docker.ProjectContainers(ctx, b.o.Project); err != nil {
		return err
	}
	c := &b.result.Conditions
	for _, ct := range b.fleet {
		switch ct.Service {
		case "api":
			c.APIReplicas++
		case "consumer":
			c.ConsumerReplicas++
		}
	}
	if c.APIReplicas == 0 || c.ConsumerReplicas == 0 {
		return fmt.Errorf("bench: project %q runs %d API replicas and %d consumers; start the fleet with ./start.sh (or pass -project)",
			b.o.Project, c.APIReplicas, c.ConsumerReplicas)
	}
	c.Database = env["KVFLEET_DB"]
	if a := b.probe.Get(ctx, "bench/probe"); a.Failure != "" || (a.Status != 200 && a.Status != 404) {
		return fmt.Errorf("bench: %s does not answer like the fleet (%s); is it up?", b.o.BaseURL, a.Class(200, true))
	}
	if port, err := strconv.Atoi(strings.TrimPrefix(b.api.base[strings.LastIndexByte(b.api.base, ':'):], ":")); err == nil {
		b.acct.WatchProxy(port)
	}
	if b.o.Reference || b.o.Broker || b.o.Backlog || b.o.PprofDir != "" {
		if err := b.checkHelpers(ctx); err != nil {
			return err
		}
	}
	b.result.Machine = describeMachine(ctx, b.docker)
	c.LoadAvgBefore = loadAvg()
	if others, err := b.docker.OtherProjects(ctx, b.o.Project); err == nil && len(others) > 0 {
		c.OtherProjects = others
		c.Warnings = append(c.Warnings, "other Compose projects are running and share the CPU: "+strings.Join(others, ", "))
	}
	s1 := b.acct.Snapshot(nil)
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	if w := Window(s1, b.acct.Snapshot(nil), nil, runtimeCores(b)); w != nil {
		c.HostBusyBefore = w.HostBusy
		if w.HostBusy > 0.25*float64(w.Cores) {
			c.Warnings = append(c.Warnings, fmt.Sprintf("the host was busy before the run (%.2f of %d cores)", w.HostBusy, w.Cores))
		}
	}
	b.log.Info("ready", "run", b.runID, "mode", b.o.Mode(), "target", b.o.BaseURL, "project", b.o.Project,
		"api", c.APIReplicas, "consumers", c.ConsumerReplicas, "load_avg", fmt.Sprint(c.LoadAvgBefore))
	return nil
}

func runtimeCores(b *runner) int {
	if b.result.Machine.Cores > 0 {
		return b.result.Machine.Cores
	}
	return 1
}

// checkHelpers checks the networks, images and static binaries the
// helper containers need.
func (b *runner) checkHelpers(ctx context.Context) error {
	for _, n := range []string{b.o.Project + "_back", b.o.Project + "_front"} {
		if !b.docker.NetworkExists(ctx, n) {
			return fmt.Errorf("bench: network %s not found; is project %q up?", n, b.o.Project)
		}
	}
	if !b.docker.ImageExists(ctx, b.o.AppImage) {
		return fmt.Errorf("bench: image %s not found; ./start.sh builds it", b.o.AppImage)
	}
	bins := []*string{&b.o.BenchBinary}
	if b.o.Reference {
		if b.nginxImage == "" || !b.docker.ImageExists(ctx, b.nginxImage) {
			return fmt.Errorf("bench: nginx image %q not found (-nginx-image, or KVFLEET_NGINX_IMAGE in %s)", b.nginxImage, b.o.EnvFile)
		}
		bins = append(bins, &b.o.RefBinary)
	}
	for _, p := range bins {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		*p = abs
		if err := checkStatic(abs); err != nil {
			return err
		}
	}
	return nil
}

// checkStatic fails unless path is a statically linked executable, which
// the helper containers (FROM scratch) need.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("bench: %s: %w (build it with `make bench-fleet`)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("bench: %s is dynamically linked; build it with CGO_ENABLED=0 (`make bench-fleet` does)", path)
		}
	}
	return nil
}

// phases runs every measurement in order. A part that fails is noted
// and the others still run, unless the run was interrupted.
func (b *runner) phases(ctx context.Context) error {
	b.startMemory(ctx)
	var errs []error
	fail := func(part string, err error) bool {
		if err == nil {
			return false
		}
		b.note("%s: %v", part, err)
		errs = append(errs, fmt.Errorf("%s: %w", part, err))
		return ctx.Err() != nil
	}
	if b.o.Idle > 0 {
		b.log.Info("idle CPU", "for", b.o.Idle)
		w, err := b.idle(ctx, b.o.Idle)
		if fail("idle", err) {
			return errors.Join(errs...)
		}
		b.result.IdleCPU = w
		b.result.IdleMemory = b.memoryNow()
	}
	if b.o.Reference && fail("reference", b.reference(ctx)) {
		return errors.Join(errs...)
	}
	if b.o.Broker {
		b.log.Info("broker ceiling", "messages", b.o.BrokerMessages)
		res, err := b.runBrokerCeiling(ctx)
		if fail("broker", err) {
			return errors.Join(errs...)
		}
		b.result.Reference.Broker = res
	}
	if fail("seeding", b.seed(ctx)) {
		return errors.Join(errs...)
	}
	for _, part := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"cached GET", b.cachedGet},
		{"uncached GET", b.uncachedGet},
		{"writes", b.writes},
		{"mixed", b.mixed},
		{"curves", b.curvesIf},
	} {
		if fail(part.name, part.run(ctx)) {
			return errors.Join(errs...)
		}
	}
	if b.o.Backlog {
		fail("backlog", b.backlog(ctx))
	}
	return errors.Join(errs...)
}

// curvesIf runs the throughput curves unless they are off.
func (b *runner) curvesIf(ctx context.Context) error {
	if !b.o.Curves {
		return nil
	}
	return b.curves(ctx)
}

// containers lists the fleet's containers and the run's own.
func (b *runner) containers(ctx context.Context) []Container {
	own, _ := b.docker.OwnContainers(ctx)
	return append(append([]Container(nil), b.fleet...), own...)
}

// idle measures the fleet's CPU with no traffic, and how much of it went
// to programs started meanwhile (healthchecks) rather than to the
// services themselves.
func (b *runner) idle(ctx context.Context, d time.Duration) (*CPUWindow, error) {
	before := b.processes()
	s1 := b.acct.Snapshot(b.fleet)
	if err := sleep(ctx, d); err != nil {
		return nil, err
	}
	s2 := b.acct.Snapshot(b.fleet)
	w := Window(s1, s2, b.fleet, b.acct.cores)
	if w == nil {
		return nil, nil
	}
	w.StartedProcesses = StartedProcesses(b.fleet, s1, s2, before, b.processes())
	ids := make([]string, 0, len(b.fleet))
	for _, c := range b.fleet {
		ids = append(ids, c.ID)
	}
	intervals, err := b.docker.HealthIntervals(ctx, ids)
	if err != nil {
		b.note("healthcheck intervals: %v", err)
	} else if len(intervals) > 0 {
		h := &Healthchecks{Containers: len(intervals)}
		for _, iv := range intervals {
			h.PerSecond += 1 / iv.Seconds()
		}
		h.PerSecond = round3(h.PerSecond)
		w.Healthchecks = h
	}
	return w, nil
}

// processes reads the CPU of each process of the fleet's containers, by
// container id.
func (b *runner) processes() map[string]map[int]time.Duration {
	out := map[string]map[int]time.Duration{}
	for _, c := range b.fleet {
		out[c.ID] = b.acct.Processes(c.ID)
	}
	return out
}

// loop is a closed- or open-loop phase.
type loop interface {
	Run(ctx context.Context, do Do) (*Recorder, time.Duration)
}

// measure runs one phase and describes it.
func (b *runner) measure(ctx context.Context, name string, l loop, do Do, lag *lagSampler, queue bool) Phase {
	cs := b.containers(ctx)
	before := b.acct.Snapshot(cs)
	start := time.Now()
	rec, elapsed := l.Run(ctx, do)
	end := time.Now()
	after := b.acct.Snapshot(cs)
	all, byOp := rec.Stats(elapsed)
	p := Phase{Name: name, Seconds: round1(elapsed.Seconds()), OpResult: all, CPU: Window(before, after, cs, b.acct.cores)}
	if len(byOp) > 1 {
		p.ByOp = byOp
	}
	switch l := l.(type) {
	case ClosedLoop:
		p.Loop, p.Connections = "closed", l.Conns
	case OpenLoop:
		p.Loop, p.TargetRate, p.Workers = "open", l.Rate, l.Workers
	}
	if delay, service, queued, ok := rec.Timing(); ok {
		p.StartDelay, p.Service, p.QueuedForWorker = &delay, &service, queued
	}
	if lag != nil {
		res := lag.wait()
		p.Lag = &res
	}
	if queue && b.watch != nil {
		// The watcher's lines arrive through docker logs, a little late.
		_ = sleep(ctx, 2*watchInterval)
		p.Queue = Trend(b.watch.snapshot(), start, end, p.PerSecond, "passive declare every "+watchInterval.String())
	}
	p.Limit = Limit(&p)
	attrs := []any{"loop", p.Loop, "per_s", p.PerSecond, "p50_ms", p.Latency.P50MS, "p99_ms", p.Latency.P99MS,
		"max_ms", p.Latency.MaxMS, "errors", p.Errors}
	if p.TargetRate > 0 {
		attrs = append(attrs, "target", p.TargetRate)
	}
	if p.StartDelay != nil {
		attrs = append(attrs, "start_delay_p99_ms", p.StartDelay.P99MS)
	}
	if p.CPU != nil {
		attrs = append(attrs, "host_cpu", p.CPU.HostBusy)
	}
	if p.Queue != nil {
		attrs = append(attrs, "queue_growth_per_s", p.Queue.GrowthPerSecond)
	}
	if p.Lag != nil {
		attrs = append(attrs, "lag_p99_ms", p.Lag.Latency.P99MS, "lag_samples", p.Lag.Sampled)
	}
	b.log.Info(name, attrs...)
	return p
}

// warm runs an unrecorded closed loop.
func (b *runner) warm(ctx context.Context, do Do) {
	if b.o.Warmup > 0 {
		ClosedLoop{Conns: b.o.Conns, Duration: b.o.Warmup}.Run(ctx, do)
	}
}

// maxRequests bounds a closed-loop phase's requests by count as well as
// by time: 50,000 per second would be far beyond this kind of machine.
func (b *runner) maxRequests() uint64 {
	return uint64(50_000 * b.o.Duration.Seconds())
}

func (b *runner) closed(conns int) ClosedLoop {
	return ClosedLoop{Conns: conns, Duration: b.o.Duration, MaxRequests: b.maxRequests()}
}

func (b *runner) open(rate int, op string) OpenLoop {
	return OpenLoop{Rate: max(rate, 1), Duration: b.o.Duration, Workers: b.o.Workers, Op: op}
}

func (b *runner) newLag() *lagSampler {
	return newLagSampler(b.probe, 32, 5*time.Millisecond, 10*time.Second)
}

// getCached reads the seeded keys at random.
func (b *runner) getCached(c *Client) Do {
	return func(ctx context.Context, _ uint64) Sample {
		a := c.Get(ctx, getKeyBase+strconv.Itoa(mrand.IntN(b.o.Keys)))
		return Sample{Op: "GET", Err: a.Class(200, false), Cached: a.Cached}
	}
}

// put writes the PUT keys at random, offering one in LagEvery
// acknowledged writes to lag.
func (b *runner) put(c *Client, tag string, lag *lagSampler) Do {
	return func(ctx context.Context, seq uint64) Sample {
		key := putKeyBase + strconv.Itoa(mrand.IntN(b.o.PutKeys))
		a := c.Put(ctx, key, value(tag, seq, b.o.ValueBytes))
		s := Sample{Op: "PUT", Err: a.Class(202, false)}
		if s.Err == "" && lag != nil && seq%uint64(b.o.LagEvery) == 0 {
			lag.sample(ctx, key, a.Version, time.Now())
		}
		return s
	}
}

// value is the value of write seq of a phase tagged tag, padded to size.
func value(tag string, seq uint64, size int) string {
	v := tag + ":" + strconv.FormatUint(seq, 10) + ":"
	if pad := size - len(v); pad > 0 {
		v += strings.Repeat(".", pad)
	}
	return v
}

// reference measures the reference server through its own nginx.
func (b *runner) reference(ctx context.Context) error {
	b.log.Info("starting the reference server and nginx")
	base, err := b.startReference(ctx)
	if err != nil {
		return err
	}
	c, err := NewClient(base, b.o.Workers, b.o.Timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	get := b.getCached(c)
	b.warm(ctx, get)
	p := b.measure(ctx, "reference GET", b.closed(b.o.Conns), get, nil, false)
	b.result.Reference.Get = &p
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h := b.measure(ctx, "reference GET at half rate", b.open(int(p.PerSecond/2), "GET"), get, nil, false)
	b.result.Reference.GetHalf = &h
	// The reference's containers would take CPU from the fleet's phases.
	for _, id := range b.refIDs {
		if err := b.docker.Remove(ctx, id); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// seed writes every cached key once and waits until each reads back.
func (b *runner) seed(ctx context.Context) error {
	b.log.Info("seeding", "keys", b.o.Keys)
	tag := "seed-" + b.runID
	rec, el := ClosedLoop{Conns: 16, Duration: 2 * time.Minute, MaxRequests: uint64(b.o.Keys)}.Run(ctx, func(ctx context.Context, seq uint64) Sample {
		a := b.api.Put(ctx, getKeyBase+strconv.Itoa(int(seq-1)), value(tag, seq, b.o.ValueBytes))
		return Sample{Op: "PUT", Err: a.Class(202, false)}
	})
	if all, _ := rec.Stats(el); all.Errors > 0 || all.OK < uint64(b.o.Keys) {
		return fmt.Errorf("%d of %d seeding writes failed (%s)", all.Errors, b.o.Keys, topErrors(all.ErrorKinds))
	}
	pending := make([]int, b.o.Keys)
	for i := range pending {
		pending[i] = i
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(pending) > 0 {
		var mu sync.Mutex
		var left []int
		var wg sync.WaitGroup
		work := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range work {
					if a := b.probe.Get(ctx, getKeyBase+strconv.Itoa(i)); a.Status != 200 {
						mu.Lock()
						left = append(left, i)
						mu.Unlock()
					}
				}
			})
		}
		for _, i := range pending {
			work <- i
		}
		close(work)
		wg.Wait()
		pending = left
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d seeded keys still not readable after 2 minutes", len(pending), b.o.Keys)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func (b *runner) cachedGet(ctx context.Context) error {
	get := b.getCached(b.api)
	b.warm(ctx, get)
	wait := b.startProfile(ctx, "api", "api-cached-get", int(b.o.Duration.Seconds())-1)
	p := b.measure(ctx, "cached GET", b.closed(b.o.Conns), get, nil, false)
	wait()
	b.result.Fleet.CachedGet = &p
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h := b.measure(ctx, "cached GET at half rate", b.open(int(p.PerSecond/2), "GET"), get, nil, false)
	b.result.Fleet.CachedGetHalf = &h
	if !b.o.Search || ctx.Err() != nil {
		return ctx.Err()
	}
	rates := Ladder{Start: int(p.PerSecond / 4), Factor: 1.25, Steps: 8, Max: int(p.PerSecond * 1.5)}.Rates()
	bound := Bound{MaxErrorRatio: 0.001, MaxP99MS: b.o.GetP99MS, MinAchieved: 0.97}
	steps, _, err := Ascend(ctx, rates, bound, func(ctx context.Context, rate int) (Phase, error) {
		return b.measure(ctx, fmt.Sprintf("cached GET step %d/s", rate), b.open(rate, "GET"), get, nil, false), ctx.Err()
	})
	b.result.Fleet.CachedGetSteps = steps
	return err
}

func (b *runner) uncachedGet(ctx context.Context) error {
	prefix := missKeyBase + b.runID + "/"
	get := func(ctx context.Context, seq uint64) Sample {
		a := b.api.Get(ctx, prefix+strconv.FormatUint(seq, 10))
		return Sample{Op: "GET", Err: a.Class(200, true), Cached: a.Cached}
	}
	// The warm-up reads other keys than the phase (its own sequence).
	warmPrefix := prefix + "warm/"
	b.warm(ctx, func(ctx context.Context, seq uint64) Sample {
		a := b.api.Get(ctx, warmPrefix+strconv.FormatUint(seq, 10))
		return Sample{Op: "GET", Err: a.Class(200, true)}
	})
	p := b.measure(ctx, "uncached GET", b.closed(b.o.Conns), get, nil, false)
	b.result.Fleet.UncachedGet = &p
	return ctx.Err()
}

func (b *runner) mixed(ctx context.Context) error {
	get, put := b.getCached(b.api), b.put(b.api, "mixed-"+b.runID, nil)
	do := func(ctx context.Context, seq uint64) Sample {
		if mrand.IntN(10) == 0 {
			return put(ctx, seq)
		}
		return get(ctx, seq)
	}
	b.warm(ctx, do)
	p := b.measure(ctx, "mixed 90/10", b.closed(b.o.Conns), do, nil, b.watch != nil)
	b.result.Fleet.Mixed = &p
	if b.watch != nil {
		if _, err := b.watch.waitBelow(ctx, 100, 2*time.Minute); err != nil {
			b.note("after the mixed phase: %v", err)
		}
	}
	return ctx.Err()
}

// writes measures PUT: the most the API accepts (closed loop), then the
// highest open-loop rate at which the write queue does not grow, then
// the write → visible lag at half that rate.
func (b *runner) writes(ctx context.Context) error {
	w, err := b.startWatch(ctx)
	if err != nil {
		return err
	}
	b.watch = w
	if _, err := w.waitBelow(ctx, 100, 2*time.Minute); err != nil {
		return fmt.Errorf("before the writes: %w", err)
	}
	res := &Writes{}
	b.result.Fleet.Writes = res
	tag := "put-" + b.runID
	b.warm(ctx, b.put(b.api, tag+"-warm", nil))
	waitAPI := b.startProfile(ctx, "api", "api-put", int(b.o.Duration.Seconds())-1)
	waitConsumer := b.startProfile(ctx, "consumer", "consumer-put", int(b.o.Duration.Seconds())-1)
	lag := b.newLag()
	p := b.measure(ctx, "PUT", b.closed(b.o.Conns), b.put(b.api, tag+"-max", lag), lag, true)
	waitAPI()
	waitConsumer()
	res.Max = &p
	res.AppliedAtMax = p.PerSecond
	if p.Queue != nil && p.Queue.GrowthPerSecond > 0 {
		res.AppliedAtMax = round1(p.PerSecond - p.Queue.GrowthPerSecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if took, err := w.waitBelow(ctx, 100, 3*time.Minute); err != nil {
		return err
	} else if took > 2*time.Second {
		b.note("the backlog of the closed-loop PUT phase took %v to drain", took.Round(100*time.Millisecond))
	}

	bound := Bound{MaxErrorRatio: 0.001, MaxP99MS: b.o.PutP99MS, MinAchieved: 0.97, QueueMustNotGrow: true}
	step := func(ctx context.Context, rate int) (Phase, error) {
		if _, err := w.waitBelow(ctx, 100, 3*time.Minute); err != nil {
			return Phase{}, err
		}
		lag := b.newLag()
		s := b.measure(ctx, fmt.Sprintf("PUT step %d/s", rate), b.open(rate, "PUT"), b.put(b.api, fmt.Sprintf("%s-%d", tag, rate), lag), lag, true)
		return s, ctx.Err()
	}
	candidate := min(p.PerSecond, res.AppliedAtMax)
	var best int
	if b.o.Search {
		rates := Ladder{Start: int(candidate * 0.3), Factor: 1.2, Steps: 10, Max: int(p.PerSecond * 1.2)}.Rates()
		res.Steps, best, err = Ascend(ctx, rates, bound, step)
	} else {
		res.Steps, best, err = Descend(ctx, DescendingRates(int(candidate*0.9), 0.8, 4), bound, step)
	}
	if err != nil {
		return err
	}
	half := int(candidate / 2)
	if best >= 0 {
		res.Sustained = &res.Steps[best]
		res.SustainedPerSecond = res.Sustained.PerSecond
		half = int(res.SustainedPerSecond / 2)
	} else {
		b.note("no PUT rate passed %+v; the half-rate phase runs at half the applied rate of the closed loop", bound)
	}
	if _, err := w.waitBelow(ctx, 100, 3*time.Minute); err != nil {
		return err
	}
	lag = b.newLag()
	h := b.measure(ctx, "PUT at half the sustained rate", b.open(half, "PUT"), b.put(b.api, tag+"-half", lag), lag, true)
	res.Half = &h
	return ctx.Err()
}

// backlog runs the backlog test and accounts its CPU.
func (b *runner) backlog(ctx context.Context) error {
	if b.watch != nil {
		b.watch.stop(ctx)
		b.watch = nil
	}
	b.log.Info("backlog", "messages", b.o.BacklogMessages)
	cs := b.containers(ctx)
	before := b.acct.Snapshot(cs)
	wait := b.startProfile(ctx, "consumer", "consumer-backlog", 10)
	res, err := b.runBacklog(ctx)
	wait()
	if res == nil {
		return err
	}
	res.CPU = Window(before, b.acct.Snapshot(cs), cs, b.acct.cores)
	res.Limit = Limit(&Phase{CPU: res.CPU})
	if res.Limit == "" && res.CPU != nil {
		res.Limit = fmt.Sprintf("host CPU %.2f of %d cores: %s", res.CPU.HostBusy, res.CPU.Cores, topServices(res.CPU, 5))
	}
	b.result.Fleet.Backlog = res
	b.log.Info("backlog", "publish_per_s", res.PublishPerSecond, "depth_at_publish_end", res.DepthAtPublishEnd,
		"drain_per_s", res.DrainPerSecond, "applied_per_s", res.AppliedPerSecond)
	return err
}

// startMemory samples the resident memory of the fleet's containers every
// second until memory or cleanup stops it.
func (b *runner) startMemory(ctx context.Context) {
	done := make(chan struct{})
	stop := make(chan struct{})
	b.stopMem = func() {
		close(stop)
		<-done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			for _, c := range b.fleet {
				rss, usage, ok := b.acct.MemoryOf(c.ID)
				if !ok {
					continue
				}
				b.memMu.Lock()
				m := b.mem[c.ID]
				m.service, m.rss, m.usage = c.Service, max(m.rss, rss), max(m.usage, usage)
				b.mem[c.ID] = m
				b.memMu.Unlock()
			}
			select {
			case <-t.C:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// memory stops the sampler and returns the peaks per service.
func (b *runner) memory() map[string]Memory {
	if b.stopMem != nil {
		b.stopMem()
		b.stopMem = nil
	}
	b.memMu.Lock()
	defer b.memMu.Unlock()
	out := map[string]Memory{}
	for _, m := range b.mem {
		s := out[m.service]
		s.Containers++
		s.MaxRSS, s.MaxUsage = max(s.MaxRSS, m.rss), max(s.MaxUsage, m.usage)
		out[m.service] = s
	}
	return out
}

// memoryNow reads the resident memory of the fleet's services now (the
// largest replica of each).
func (b *runner) memoryNow() map[string]Memory {
	out := map[string]Memory{}
	for _, c := range b.fleet {
		rss, usage, ok := b.acct.MemoryOf(c.ID)
		if !ok {
			continue
		}
		m := out[c.Service]
		m.Containers++
		m.MaxRSS, m.MaxUsage = max(m.MaxRSS, rss), max(m.MaxUsage, usage)
		out[c.Service] = m
	}
	return out
}

// note records something the reader of the result should know.
func (b *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.log.Warn(msg)
	b.result.Notes = append(b.result.Notes, msg)
}

// cleanup removes every container and file the run made.
func (b *runner) cleanup(ctx context.Context) {
	if b.watch != nil {
		b.watch.stop(ctx)
	}
	if b.stopMem != nil {
		b.stopMem()
	}
	if err := b.docker.Cleanup(ctx); err != nil {
		b.log.Error("removing the benchmark's containers failed; remove them with: docker rm -f $(docker ps -aq --filter label="+RunLabel+"="+b.runID+")", "err", err)
	}
	for _, d := range b.tempDirs {
		_ = os.RemoveAll(d)
	}
	if b.api != nil {
		b.api.Close()
	}
	if b.probe != nil {
		b.probe.Close()
	}
}

// method says how each number is measured, for the reader of the JSON.
func method(o Options) []string {
	m := []string{
		fmt.Sprintf("closed loop: %d connections, each sends its next request when the previous is answered; %v warm-up, then %v measured; throughput = successful requests / measured window", o.Conns, o.Warmup, o.Duration),
		fmt.Sprintf("open loop: a fixed schedule of requests whatever the answers take (at most %d in flight); latency from when each request was due", o.Workers),
		"reference GET: one Gin handler doing one go-redis GET through the fleet's Sentinels, behind an nginx with the fleet's read settings, published on 127.0.0.1 through the same Docker proxy",
		"broker: a quorum queue of its own in the fleet's cluster, persistent messages the size of the API's, 4 confirm channels with 256 unconfirmed each, drained by 2 consumers with prefetch 256 acknowledging 128 at a time",
		"cached GET: keys written and read back before the phase; uncached GET: a key never read before per request (a cache miss, a database read, a negative cache fill, the API's 404)",
		"PUT sustained: the highest open-loop rate with < 0.1% errors, >= 97% of the rate answered, and the write queue not growing (ready messages read by passive declare every 200 ms); write -> visible lag: 1 PUT in " + strconv.Itoa(o.LagEvery) + " is read every 5 ms from its 202 until its version (or a newer) shows",
		"backlog: writes encoded as the API encodes them, published straight into kvfleet.writes as fast as the broker confirms, with the fleet's consumers paused (docker pause) until every write is confirmed; drain rate = the whole backlog / time from the last read that still saw all of it (after the unpause) until no ready message remained (depth read every 50 ms); if the consumers cannot be paused, they work meanwhile and the rate is the backlog left when publishing ended over its drain time",
		"CPU: cgroup cpuacct of every container, /proc/stat for the host, /proc for docker-proxy, getrusage for this client; memory: cgroup memory.stat rss + mapped_file, largest replica, sampled every second",
		"idle: the same counters over a window with no traffic; programs started during it (Docker's exec healthchecks, forked backends) = a container's cgroup CPU less the CPU of its processes present at both ends (/proc/<pid>/stat), and the healthchecks' rate = the sum of 1/interval of the fleet's containers",
	}
	if o.Search {
		m = append(m, "rate searches: open-loop steps of 1.25x (GET) and 1.2x (PUT) until a step fails its bound")
	}
	if o.Curves {
		m = append(m, fmt.Sprintf("curves: each operation on an open loop of %v steps, from %.0f%% of its closed-loop rate up by %.2fx (at most %d steps, never above %.1fx the closed-loop rate), until a step has > 0.1%% errors, p99 > %.0f ms, < 97%% of the rate answered or (writes) a growing queue; when the first step already fails, down by the same factor instead (at most %d steps, not below %d/s) until one passes; the write queue is emptied before each write step",
			o.CurveStep, curveStart*100, o.CurveFactor, o.CurveSteps, curveCap, o.CurveP99MS, curveStepsDown, curveFloor))
	}
	return m
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b[:])
}
