package bench

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Ratio compares a fleet figure with its reference ceiling.
type Ratio struct {
	Name      string  `json:"name"`
	Fleet     float64 `json:"fleet"`
	Reference float64 `json:"reference"`
	// Value is Fleet / Reference.
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Ratios returns the ratios of the fleet's figures to the reference's
// that both sides of r measured.
func Ratios(r *Result) []Ratio {
	var out []Ratio
	add := func(name, unit string, fleet, ref float64) {
		if fleet > 0 && ref > 0 {
			out = append(out, Ratio{Name: name, Fleet: fleet, Reference: ref, Value: round3(fleet / ref), Unit: unit})
		}
	}
	if ref := r.Reference.Get; ref != nil {
		f := r.Fleet
		if f.CachedGet != nil {
			add("cached GET / reference GET", "req/s", f.CachedGet.PerSecond, ref.PerSecond)
		}
		if f.UncachedGet != nil {
			add("uncached GET / reference GET", "req/s", f.UncachedGet.PerSecond, ref.PerSecond)
		}
		if f.Mixed != nil {
			add("mixed 90/10 / reference GET", "req/s", f.Mixed.PerSecond, ref.PerSecond)
		}
		if f.CachedGet != nil {
			add("cached GET p50 / reference p50 (closed loop)", "ms", f.CachedGet.Latency.P50MS, ref.Latency.P50MS)
		}
		if h, rh := f.CachedGetHalf, r.Reference.GetHalf; h != nil && rh != nil {
			add("cached GET p99 / reference p99 (open loop, each at half its max)", "ms", h.Latency.P99MS, rh.Latency.P99MS)
		}
	}
	if b := r.Reference.Broker; b != nil {
		if w := r.Fleet.Writes; w != nil {
			add("sustained PUT (accepted and applied) / broker confirmed publish", "msg/s", w.SustainedPerSecond, b.PublishPerSecond)
			if w.Max != nil {
				add("PUT accepted at most / broker confirmed publish", "msg/s", w.Max.PerSecond, b.PublishPerSecond)
			}
		}
		if bl := r.Fleet.Backlog; bl != nil {
			add("backlog drain by the consumers / broker drain", "msg/s", bl.DrainPerSecond, b.DrainPerSecond)
		}
	}
	return out
}

// Goal is one line of the Goals table.
type Goal struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Met is nil when the run did not measure it.
	Met   *bool  `json:"met"`
	Limit string `json:"limit,omitempty"`
}

const mib = 1 << 20

// Goals evaluates the goals of issue 7 on r.
func Goals(r *Result) []Goal {
	var out []Goal
	add := func(name, target string, measured bool, value string, met bool, limit string) {
		g := Goal{Name: name, Target: target, Measured: "not measured"}
		if measured {
			g.Measured, g.Met, g.Limit = value, &met, limit
			if met {
				g.Limit = ""
			}
		}
		out = append(out, g)
	}
	idle := r.IdleCPU
	add("idle fleet CPU", "< 10% of one core", idle != nil,
		func() string {
			if idle == nil {
				return ""
			}
			return fmt.Sprintf("%.1f%% of one core over %.0f s", idle.Fleet*100, idle.Seconds)
		}(), idle != nil && idle.Fleet < 0.10, IdleBreakdown(idle))

	get, ref := r.Fleet.CachedGet, r.Reference.Get
	if get != nil && ref != nil && ref.PerSecond > 0 {
		v := get.PerSecond / ref.PerSecond
		add("cached GET vs reference ceiling", ">= 0.6x", true, fmt.Sprintf("%.2fx (%.0f / %.0f req/s)", v, get.PerSecond, ref.PerSecond), v >= 0.6, get.Limit)
	} else {
		add("cached GET vs reference ceiling", ">= 0.6x", false, "", false, "")
	}
	add("cached GET throughput", ">= 5,000 req/s", get != nil, func() string {
		if get == nil {
			return ""
		}
		return fmt.Sprintf("%.0f req/s", get.PerSecond)
	}(), get != nil && get.PerSecond >= 5000, limitOr(get))
	half := r.Fleet.CachedGetHalf
	add("cached GET p99 at half that rate", "<= 20 ms", half != nil, func() string {
		if half == nil {
			return ""
		}
		return fmt.Sprintf("%.1f ms at %d req/s", half.Latency.P99MS, half.TargetRate)
	}(), half != nil && half.Latency.P99MS <= 20 && half.ErrorRatio() < 0.001, limitOr(half))

	w := r.Fleet.Writes
	add("sustained writes, accepted and applied", ">= 3,000/s", w != nil, func() string {
		if w == nil {
			return ""
		}
		return fmt.Sprintf("%.0f/s", w.SustainedPerSecond)
	}(), w != nil && w.SustainedPerSecond >= 3000, func() string {
		if w == nil {
			return ""
		}
		if w.Sustained != nil && w.Sustained.Limit != "" {
			return w.Sustained.Limit
		}
		return limitOr(w.Max)
	}())
	var wh *Phase
	if w != nil {
		wh = w.Half
	}
	add("write -> visible p99 at half that rate", "<= 100 ms", wh != nil && wh.Lag != nil && wh.Lag.Visible > 0, func() string {
		if wh == nil || wh.Lag == nil {
			return ""
		}
		return fmt.Sprintf("%.1f ms at %d/s (%d samples, %d not visible)", wh.Lag.Latency.P99MS, wh.TargetRate, wh.Lag.Sampled, wh.Lag.NotVisible)
	}(), wh != nil && wh.Lag != nil && wh.Lag.Latency.P99MS <= 100 && wh.Lag.NotVisible == 0, limitOr(wh))

	bl := r.Fleet.Backlog
	add("backlog drain", ">= 20,000 writes/s", bl != nil && bl.Drained, func() string {
		if bl == nil {
			return ""
		}
		return fmt.Sprintf("%.0f/s (%d messages)", bl.DrainPerSecond, bl.Messages)
	}(), bl != nil && bl.DrainPerSecond >= 20000, func() string {
		if bl == nil {
			return ""
		}
		return bl.Limit
	}())

	for _, svc := range []string{"api", "consumer"} {
		m, ok := r.Memory[svc]
		add(svc+" RSS under load", "<= 64 MiB", ok && m.MaxRSS > 0,
			fmt.Sprintf("%.1f MiB (largest of %d)", float64(m.MaxRSS)/mib, m.Containers), m.MaxRSS <= 64*mib,
			"resident memory (cgroup memory.stat rss + mapped_file)")
	}
	return out
}

func limitOr(p *Phase) string {
	if p == nil {
		return ""
	}
	return p.Limit
}

// Limit names what bounded a phase, from its CPU window, its queue trend
// and its errors.
func Limit(p *Phase) string {
	switch {
	case p.StartDelay != nil && p.QueuedForWorker*100 > p.Requests && p.StartDelay.P99MS >= 10:
		return fmt.Sprintf("the target fell behind: %d requests found all %d workers busy (rate x latency > %d in flight) and started up to %.1f ms late at p99; service p50 %.1f ms",
			p.QueuedForWorker, p.Workers, p.Workers, p.StartDelay.P99MS, p.Service.P50MS)
	case p.StartDelay != nil && p.StartDelay.P99MS >= 10 && p.StartDelay.P99MS >= 0.5*p.Latency.P99MS:
		host := ""
		if p.CPU != nil {
			host = fmt.Sprintf("; host CPU %.2f of %d cores: %s", p.CPU.HostBusy, p.CPU.Cores, topServices(p.CPU, 5))
		}
		return fmt.Sprintf("the tail is scheduling, not service: requests started up to %.1f ms late at p99 (service p99 %.1f ms)%s",
			p.StartDelay.P99MS, p.Service.P99MS, host)
	case p.CPU != nil && p.CPU.Cores > 0 && p.CPU.HostBusy >= 0.9*float64(p.CPU.Cores):
		return fmt.Sprintf("host CPU saturated (%.2f of %d cores): %s", p.CPU.HostBusy, p.CPU.Cores, topServices(p.CPU, 6))
	case p.Queue != nil && p.Queue.Growing:
		return fmt.Sprintf("consumers: the write queue grew by %.0f/s", p.Queue.GrowthPerSecond)
	case p.ErrorRatio() > 0.01:
		return "errors: " + topErrors(p.ErrorKinds)
	case p.Loop == "closed" && p.Latency.MeanMS > 0:
		busy := ""
		if p.CPU != nil {
			busy = fmt.Sprintf("; host CPU %.2f of %d cores: %s", p.CPU.HostBusy, p.CPU.Cores, topServices(p.CPU, 4))
		}
		return fmt.Sprintf("latency-bound: %d connections / %.2f ms mean = %.0f/s%s",
			p.Connections, p.Latency.MeanMS, float64(p.Connections)/p.Latency.MeanMS*1000, busy)
	}
	return ""
}

// IdleBreakdown says where an idle window's CPU went: how much of the
// fleet's went to programs started during it (Docker's exec healthchecks
// and their rate, backend forks), and the busiest services.
func IdleBreakdown(w *CPUWindow) string {
	if w == nil {
		return ""
	}
	var parts []string
	if w.StartedProcesses != nil {
		var started float64
		for _, v := range w.StartedProcesses {
			started += v
		}
		part := fmt.Sprintf("programs started during the window %.3f of the fleet's %.3f cores", started, w.Fleet)
		if h := w.Healthchecks; h != nil {
			part += fmt.Sprintf(" (Docker runs %.2f exec healthchecks/s in %d containers)", h.PerSecond, h.Containers)
		}
		parts = append(parts, part)
	}
	parts = append(parts, "busiest: "+topServices(w, 3))
	return strings.Join(parts, "; ")
}

// topServices lists the largest CPU users of w, the client and the
// Docker proxy included.
func topServices(w *CPUWindow, n int) string {
	if w == nil {
		return ""
	}
	all := maps.Clone(w.ByService)
	if all == nil {
		all = map[string]float64{}
	}
	if w.Client > 0 {
		all["bench client"] = w.Client
	}
	if w.DockerProxy > 0 {
		all["docker-proxy"] = w.DockerProxy
	}
	if w.Steal > 0.005 {
		all["steal (hypervisor)"] = w.Steal
	}
	if w.Other > 0 {
		all["other"] = w.Other
	}
	names := slices.Collect(maps.Keys(all))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(all[b], all[a]), strings.Compare(a, b))
	})
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		parts = append(parts, name+" "+cores(all[name]))
	}
	return strings.Join(parts, ", ")
}

// cores formats a CPU figure with two decimals, three below 0.1 (an
// idle service's).
func cores(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func topErrors(kinds map[string]uint64) string {
	names := slices.Collect(maps.Keys(kinds))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(kinds[b], kinds[a]), strings.Compare(a, b))
	})
	var parts []string
	for _, name := range names[:min(3, len(names))] {
		parts = append(parts, fmt.Sprintf("%s x%d", name, kinds[name]))
	}
	return strings.Join(parts, ", ")
}

// Disturbances lists the phases during which the host spent noticeable
// CPU outside the fleet, the benchmark and the Docker proxies, naming
// the busiest host processes: another program competed for the CPU, and
// those figures are pessimistic.
func Disturbances(r *Result) []string {
	var out []string
	check := func(name string, w *CPUWindow) {
		if w == nil || w.Other < 0.25 {
			return
		}
		procs := topServices(&CPUWindow{ByService: w.HostProcesses}, 4)
		if procs == "" {
			procs = "no single host process stood out"
		}
		out = append(out, fmt.Sprintf("%s: %.2f cores went outside the fleet and the benchmark (host processes: %s)", name, w.Other, procs))
	}
	// The broker and backlog windows are left out: their helper container
	// is itself in Other there.
	for _, p := range allPhases(r) {
		check(p.Name, p.CPU)
	}
	return out
}
