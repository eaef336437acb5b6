package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kvfleet/kvfleet/internal/bench"
	"github.com/kvfleet/kvfleet/internal/chaos"
)

// Faults is section 4.
type Faults struct {
	Section
	Run       string
	Pass      bool
	Summary   [][]string
	Scenarios []Scenario
	Notes     []string
}

// Scenario is one chaos scenario's subsection.
type Scenario struct {
	Name, Description, Verdict string
	Chart                      *Chart
	Events                     []string
	Checks                     [][]string
	Errors                     string
	Error                      string
}

func faults(in *Inputs, charts map[string]Chart) Faults {
	c := in.Chaos
	if c == nil {
		return Faults{Section: Section{Missing: in.Why(FileChaos)}}
	}
	f := Faults{Pass: c.Pass, Notes: c.Notes}
	f.Run = fmt.Sprintf("The chaos suite (`kvfleet-chaos`, as `make chaos` runs it; schedule %s), %s, %d writes/s (%.0f %% deletes) and %d reads/s over %d keys per scenario, through %s",
		c.Schedule, c.Started.UTC().Format("2006-01-02 15:04 UTC"), c.WriteRate, c.DeleteFraction*100, c.ReadRate, c.Keys, c.BaseURL)
	for _, s := range c.Scenarios {
		conv := "did not converge"
		if s.Convergence.Converged {
			conv = fmt.Sprintf("%.1f s", s.Convergence.Seconds)
		}
		f.Summary = append(f.Summary, []string{s.Name, verdict(s.Pass),
			fmt.Sprint(s.Convergence.Lost), fmt.Sprint(s.Convergence.Corrupt),
			pct(s.Writes.Availability), downText(s.Writes), pct(s.Reads.Availability), downText(s.Reads),
			conv, msec(s.AckLatency.P99)})
		sc := Scenario{Name: s.Name, Description: s.Description, Verdict: verdict(s.Pass), Error: s.Error}
		if ch, ok := charts["chaos-"+s.Name]; ok {
			sc.Chart = &ch
		}
		for _, e := range s.Events {
			sc.Events = append(sc.Events, fmt.Sprintf("%6.1f s  %s", e.At, e.What))
		}
		for _, ch := range s.Checks {
			sc.Checks = append(sc.Checks, []string{cell(ch.Name), cell(ch.Limit), cell(ch.Observed), map[bool]string{true: "pass", false: "**FAIL**"}[ch.Pass]})
		}
		var errs []string
		for _, x := range []struct {
			name string
			m    map[string]int
		}{{"writes", s.Writes.Errors}, {"reads", s.Reads.Errors}} {
			if len(x.m) > 0 {
				errs = append(errs, x.name+": "+kinds(x.m))
			}
		}
		sc.Errors = strings.Join(errs, "; ")
		f.Scenarios = append(f.Scenarios, sc)
	}
	return f
}

// downText is how long a stream was unavailable: the longest run under
// the threshold, and how many seconds had any failure.
func downText(s chaos.Stream) string {
	failing := 0
	for i, a := range s.PerSecond {
		if i < len(s.SentPerSecond) && s.SentPerSecond[i] > 0 && a < 1 {
			failing++
		}
	}
	longest := "0 s"
	if s.LongestDown.Seconds > 0 {
		longest = fmt.Sprintf("%d s (from second %d)", s.LongestDown.Seconds, s.LongestDown.Start)
	}
	return fmt.Sprintf("%s; %d s with a failure", longest, failing)
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "**FAIL**"
}

func kinds(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b)) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// Scaling is section 5.
type Scaling struct {
	Section
	Run       string
	Settings  string
	Phases    [][]string
	Decisions [][]string
	Checks    [][]string
	Requests  string
}

func scaling(in *Inputs, charts map[string]Chart) Scaling {
	a := in.Autoscale
	if a == nil {
		return Scaling{Section: Section{Missing: in.Why(FileAutoscale)}}
	}
	s := Scaling{Section: Section{Charts: pick(charts, "autoscale")}}
	s.Run = fmt.Sprintf("`kvfleet-autoscale -schedule %s` (cmd/kvfleet-autoscale; `make autoscale-test` runs it on a fleet of its own), %s to %s, through %s; %s",
		a.Mode, a.Started.UTC().Format("2006-01-02 15:04:05"), a.Finished.UTC().Format("15:04:05 UTC"), a.BaseURL, map[bool]string{true: "passed", false: "**failed**"}[a.Pass])
	st := a.Settings
	s.Settings = fmt.Sprintf("evaluation every %.0f s, cooldown %.0f s, scale-down window %.0f s; API %d–%d replicas, consumers %d–%d",
		st.IntervalS, st.CooldownS, st.DownWindowS, st.APIMin, st.APIMax, st.ConsumerMin, st.ConsumerMax)
	for _, p := range a.Phases {
		s.Phases = append(s.Phases, []string{cell(p.Name), fmt.Sprintf("%.0f–%.0f s", p.StartS, p.EndS), num(p.OfferedPerS)})
	}
	for _, d := range a.Decisions {
		s.Decisions = append(s.Decisions, []string{fmt.Sprintf("%.0f s", d.T), d.Service, fmt.Sprintf("%d → %d", d.From, d.To), cell(d.Reason), cell(d.Signals)})
	}
	for _, c := range a.Checks {
		s.Checks = append(s.Checks, []string{cell(c.Name), map[bool]string{true: "pass", false: "**FAIL**"}[c.Pass], cell(c.Detail)})
	}
	r := a.Requests
	s.Requests = fmt.Sprintf("%s requests sent, %s ok, %s failed", num(float64(r.Sent)), num(float64(r.OK)), num(float64(r.Failed)))
	if len(r.Errors) > 0 {
		s.Requests += " (" + kinds(r.Errors) + ")"
	}
	return s
}

// Resources is section 6.
type Resources struct {
	Section
	Header []string
	CPU    [][]string
	Memory [][]string
	Idle   string
}

func resources(in *Inputs, charts map[string]Chart) Resources {
	b := in.Bench
	if b == nil {
		return Resources{Section: Section{Missing: in.Why(FileBench)}}
	}
	r := Resources{Section: Section{Charts: pick(charts, "resources", "memory")}}
	cols := resourceColumns(b)
	r.Header = []string{"service"}
	for _, c := range cols {
		r.Header = append(r.Header, c.name)
	}
	for _, row := range cpuRows(cols) {
		line := []string{row}
		for _, c := range cols {
			line = append(line, cores(cpuOf(c.w, row)))
		}
		r.CPU = append(r.CPU, line)
	}
	total := []string{"**whole host**"}
	for _, c := range cols {
		total = append(total, fmt.Sprintf("**%.2f** of %d", c.w.HostBusy, c.w.Cores))
	}
	r.CPU = append(r.CPU, total)
	if b.IdleCPU != nil {
		r.Idle = fmt.Sprintf("Idle, the fleet's containers used %.1f %% of one core together over %.0f s (the host %.2f cores).", b.IdleCPU.Fleet*100, b.IdleCPU.Seconds, b.IdleCPU.HostBusy)
	} else {
		r.Idle = "The idle CPU was not measured in this run (the benchmark's -idle window was 0)."
	}
	names := slices.Sorted(maps.Keys(b.Memory))
	for _, n := range names {
		idle := "–"
		if m, ok := b.IdleMemory[n]; ok {
			idle = mib(m.MaxRSS)
		}
		m := b.Memory[n]
		r.Memory = append(r.Memory, []string{n, fmt.Sprint(m.Containers), idle, mib(m.MaxRSS), mib(m.MaxUsage)})
	}
	return r
}

// limits derives section 7 from the measurements: what saturated first
// in each curve, where the CPU went, and what would lift it.
func limits(in *Inputs) []string {
	var out []string
	b := in.Bench
	if b == nil {
		return []string{"Without the benchmark's result there is nothing to derive limits from: " + in.Why(FileBench)}
	}
	lifts := map[string]bool{}
	for _, c := range b.Fleet.Curves {
		fail := c.FirstFailure()
		sat := c.Saturated()
		switch {
		case fail == nil && sat != nil:
			out = append(out, fmt.Sprintf("**%s** passed every step up to %s/s, the top of its ladder: its limit is above what this run offered.", c.Op, num(sat.PerSecond)))
			continue
		case fail == nil:
			continue
		}
		at := "no step passed"
		if sat != nil {
			at = fmt.Sprintf("it served %s/s within the bound (p99 %s)", num(sat.PerSecond), msec(sat.Latency.P99MS))
		}
		top := topFleetService(fail.CPU)
		line := fmt.Sprintf("**%s**: %s; at %s/s offered it failed (%s). %s.", c.Op, at, num(float64(fail.TargetRate)), fail.Verdict, capital(limitingResource(fail.CPU)))
		if top != "" {
			line += fmt.Sprintf(" The fleet's largest CPU user there was %s.", top)
		}
		out = append(out, line)
		if fail.CPU != nil && fail.CPU.HostBusy >= 0.9*float64(fail.CPU.Cores) {
			lifts["cpu"] = true
		}
		lifts[serviceKind(top)] = true
		if fail.CPU != nil && fail.CPU.Client+fail.CPU.DockerProxy >= 0.25*fail.CPU.HostBusy {
			lifts["client"] = true
		}
	}
	if w := b.Fleet.Writes; w != nil && w.Max != nil && b.Reference.Broker != nil && b.Reference.Broker.PublishPerSecond > 0 {
		out = append(out, fmt.Sprintf("Writes: the API accepted at most %s/s against %s confirmed publishes/s for RabbitMQ alone in the same cluster (%s): every accepted write is one confirmed publish to a quorum queue replicated on three nodes that share the same cores.",
			num(w.Max.PerSecond), num(b.Reference.Broker.PublishPerSecond), ratio(w.Max.PerSecond/b.Reference.Broker.PublishPerSecond)))
	}
	if c := in.Chaos; c != nil {
		for _, s := range c.Scenarios {
			if s.Writes.LongestDown.Seconds > 0 || s.Reads.LongestDown.Seconds > 0 {
				out = append(out, fmt.Sprintf("Faults: during %s, writes were under %.0f %% available for %d s and reads for %d s in a row (%s).",
					s.Name, 50.0, s.Writes.LongestDown.Seconds, s.Reads.LongestDown.Seconds, s.Description))
			}
		}
	}
	for _, k := range []string{"cpu", "client", "api", "broker", "nginx", "database", "cache"} {
		if lifts[k] {
			out = append(out, liftText[k])
		}
	}
	return out
}

// liftText says what would lift each kind of limit.
var liftText = map[string]string{
	"cpu":      "*What would lift it — more cores:* every figure above was measured with the whole fleet (3 API replicas, 2 consumers, 3 RabbitMQ nodes, 3 Redis data nodes and 3 Sentinels, the database, nginx, Prometheus) and the load generator sharing one machine's cores; the host CPU was saturated at the knee. The same fleet on more cores, or its services spread over several machines, moves every knee up.",
	"client":   "*What would lift it — a separate client:* the benchmark client and Docker's userland proxy (the published port) took a large share of the CPU at the knee; a client on another machine and host networking (or Kubernetes' Service routing) give that share back to the fleet.",
	"api":      "*What would lift it — more API capacity:* the API replicas were the largest CPU user; on Kubernetes the HPA (deploy/kubernetes) spreads more replicas over more nodes, and the autoscaler (`monitor-scale.sh`) adds replicas in Compose when cores are free.",
	"broker":   "*What would lift it — a bigger broker:* RabbitMQ was the largest CPU user; each write is replicated by the quorum queue on three nodes of the same machine. Nodes on machines of their own, more cores per node, or more queues (partitioning the keys) would lift the write ceiling.",
	"nginx":    "*What would lift it — the entry point:* nginx was the largest CPU user; more worker processes on more cores, or an ingress controller spread over nodes, lift it.",
	"database": "*What would lift it — the database:* it was the largest CPU user; uncached reads and applied writes go to one database, which a bigger machine, read replicas, or CockroachDB nodes on separate machines lift.",
	"cache":    "*What would lift it — the cache:* Redis was the largest CPU user; replicas serving reads, or Redis on a machine of its own, lift it.",
}

// topFleetService names the fleet's service that used the most CPU in w,
// with its figure.
func topFleetService(w *bench.CPUWindow) string {
	if w == nil || len(w.ByService) == 0 {
		return ""
	}
	names := slices.Collect(maps.Keys(w.ByService))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(w.ByService[b], w.ByService[a]), strings.Compare(a, b))
	})
	for _, n := range names {
		if !strings.HasPrefix(n, "bench-") {
			return fmt.Sprintf("%s (%s cores)", n, cores(w.ByService[n]))
		}
	}
	return ""
}

// serviceKind groups a service under the limit it stands for.
func serviceKind(s string) string {
	switch {
	case strings.HasPrefix(s, "api"):
		return "api"
	case strings.HasPrefix(s, "rabbitmq"), strings.HasPrefix(s, "consumer"):
		return "broker"
	case strings.HasPrefix(s, "nginx"):
		return "nginx"
	case strings.HasPrefix(s, "postgres"), strings.HasPrefix(s, "cockroach"), strings.HasPrefix(s, "db-proxy"):
		return "database"
	case strings.HasPrefix(s, "redis"):
		return "cache"
	}
	return ""
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// headline is the handful of figures the README quotes.
func headline(in *Inputs) []string {
	var out []string
	if b := in.Bench; b != nil {
		for _, c := range b.Fleet.Curves {
			if s := c.Saturated(); s != nil {
				out = append(out, fmt.Sprintf("%s: %s/s within p99 ≤ %.0f ms (p99 %s)", c.Op, num(s.PerSecond), c.P99MS, msec(s.Latency.P99MS)))
			}
		}
		if w := b.Fleet.Writes; w != nil && w.SustainedPerSecond > 0 {
			out = append(out, fmt.Sprintf("writes accepted and applied with the queue not growing: %s/s", num(w.SustainedPerSecond)))
		}
		if b.IdleCPU != nil {
			out = append(out, fmt.Sprintf("idle fleet: %.1f %% of one core", b.IdleCPU.Fleet*100))
		}
	}
	for _, x := range ratios(in) {
		if x.ref == "etcd put (durable, one member)" && strings.HasPrefix(x.what, "PUT accepted") || x.ref == "Redis GET" {
			out = append(out, fmt.Sprintf("%s vs %s on the same machine: %s", x.what, x.ref, ratio(x.fleet/x.refValue)))
		}
	}
	if c := in.Chaos; c != nil {
		lost := 0
		for _, s := range c.Scenarios {
			lost += s.Convergence.Lost
		}
		passed := 0
		for _, s := range c.Scenarios {
			if s.Pass {
				passed++
			}
		}
		out = append(out, fmt.Sprintf("chaos (%s schedule): %d of %d scenarios passed, %d acknowledged writes lost", c.Schedule, passed, len(c.Scenarios), lost))
	}
	if a := in.Autoscale; a != nil {
		passed := 0
		for _, c := range a.Checks {
			if c.Pass {
				passed++
			}
		}
		peak := map[string]int{}
		for _, d := range a.Decisions {
			peak[d.Service] = max(peak[d.Service], d.To)
		}
		out = append(out, fmt.Sprintf("autoscaling (%s schedule): %d of %d checks passed; API %d → up to %d replicas, consumers %d → up to %d; %s of %s requests failed",
			a.Mode, passed, len(a.Checks), a.Settings.APIMin, max(peak["api"], a.Settings.APIMin),
			a.Settings.ConsumerMin, max(peak["consumer"], a.Settings.ConsumerMin), num(float64(a.Requests.Failed)), num(float64(a.Requests.Sent))))
	}
	if e := in.E2E; e != nil {
		n := 0
		for _, c := range e.Cases {
			if c.Result == "pass" {
				n++
			}
		}
		out = append(out, fmt.Sprintf("functional: %d of %d end-to-end cases passed", n, len(e.Cases)))
	}
	return out
}
