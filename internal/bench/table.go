package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints r as the tables a reader compares: the reference
// ceilings (a), the fleet (b), their ratios (c), the goals, and what
// limited each phase.
func WriteSummary(out io.Writer, r *Result) {
	m, c := r.Machine, r.Conditions
	fmt.Fprintf(out, "\nkvfleet bench-fleet (%s mode), %s to %s\n", r.Mode, r.Started.Format("2006-01-02 15:04:05Z"), r.Finished.Format("15:04:05Z"))
	fmt.Fprintf(out, "target    %s  (project %s: %d API replicas, %d consumers, database %s)\n", r.Target, r.Project, c.APIReplicas, c.ConsumerReplicas, orDash(c.Database))
	fmt.Fprintf(out, "machine   %d cores (%s), %.1f GiB, kernel %s, Docker %s (%s, cgroup v%s), %s\n",
		m.Cores, orDash(m.CPUModel), float64(m.MemoryBytes)/(1<<30), m.Kernel, m.DockerVersion, m.StorageDriver, m.CgroupVersion, m.GoVersion)
	fmt.Fprintf(out, "load      average %.2f %.2f %.2f before, %.2f %.2f %.2f after; host busy %.2f cores just before\n",
		c.LoadAvgBefore[0], c.LoadAvgBefore[1], c.LoadAvgBefore[2], c.LoadAvgAfter[0], c.LoadAvgAfter[1], c.LoadAvgAfter[2], c.HostBusyBefore)
	for _, w := range c.Warnings {
		fmt.Fprintf(out, "WARNING   %s\n", w)
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	header := "  phase\tloop\tper s\tp50 ms\tp99 ms\tmax ms\terrors\thost CPU\tlate p99\t"
	fmt.Fprintf(tw, "\n(a) REFERENCE on this machine\n%s\n", header)
	row(tw, r.Reference.Get)
	row(tw, r.Reference.GetHalf)
	if b := r.Reference.Broker; b != nil {
		host := ""
		if b.CPU != nil {
			host = fmt.Sprintf("%.2f", b.CPU.HostBusy)
		}
		fmt.Fprintf(tw, "  broker confirmed publish\t%d msgs, %d ch x %d\t%.0f\t\t\t\t\t%s\t\t\n", b.Messages, b.Channels, b.Window, b.PublishPerSecond, host)
		fmt.Fprintf(tw, "  broker drain (consume + ack)\t%d consumers, prefetch %d\t%.0f\t\t\t\t\t\t\n", b.Consumers, b.Prefetch, b.DrainPerSecond)
	}
	f := r.Fleet
	fmt.Fprintf(tw, "\n(b) FLEET through %s\n%s\n", r.Target, header)
	row(tw, f.CachedGet)
	row(tw, f.CachedGetHalf)
	for i := range f.CachedGetSteps {
		row(tw, &f.CachedGetSteps[i])
	}
	row(tw, f.UncachedGet)
	if w := f.Writes; w != nil {
		row(tw, w.Max)
		if w.Max != nil {
			fmt.Fprintf(tw, "    applied meanwhile (accepted - queue growth)\t\t%.0f\t\t\t\t\t\t\n", w.AppliedAtMax)
		}
		for i := range w.Steps {
			row(tw, &w.Steps[i])
		}
		fmt.Fprintf(tw, "  PUT sustained, accepted and applied\t\t%.0f\t\t\t\t\t\t\n", w.SustainedPerSecond)
		row(tw, w.Half)
	}
	row(tw, f.Mixed)
	if f.Mixed != nil {
		for _, op := range []string{"GET", "PUT"} {
			if o, ok := f.Mixed.ByOp[op]; ok {
				fmt.Fprintf(tw, "    of which %s\t\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t\t\n", op, o.PerSecond, o.Latency.P50MS, o.Latency.P99MS, o.Latency.MaxMS, o.Errors)
			}
		}
	}
	for _, c := range f.Curves {
		for i := range c.Steps {
			row(tw, &c.Steps[i])
		}
		if p := c.Saturated(); p != nil {
			fmt.Fprintf(tw, "  %s: most served within the bound\t\t%.0f\t\t\t\t\t\t\n", c.Op, p.PerSecond)
		}
	}
	if bl := f.Backlog; bl != nil {
		fmt.Fprintf(tw, "  backlog: publish into kvfleet.writes\t%d msgs\t%.0f\t\t\t\t\t\t\n", bl.Messages, bl.PublishPerSecond)
		host := ""
		if bl.CPU != nil {
			host = fmt.Sprintf("%.2f", bl.CPU.HostBusy)
		}
		from := fmt.Sprintf("from %d", bl.DepthAtPublishEnd)
		switch {
		case bl.Held:
			from = fmt.Sprintf("held, then all %d", bl.DrainFrom)
		case bl.KeptPace:
			from = "kept pace: >="
		}
		fmt.Fprintf(tw, "  backlog: drain by the consumers\t%s\t%.0f\t\t\t\t\t%s\t\n", from, bl.DrainPerSecond, host)
		if bl.Held {
			fmt.Fprintf(tw, "  backlog: consumers started on it after\t%.1f s\t\t\t\t\t\t\t\n", bl.ResumeSeconds)
		}
		fmt.Fprintf(tw, "  backlog: applied, first publish to empty\t\t%.0f\t\t\t\t\t\t\n", bl.AppliedPerSecond)
	}
	tw.Flush()

	lagRows := [][2]any{}
	if w := f.Writes; w != nil {
		if w.Max != nil && w.Max.Lag != nil {
			lagRows = append(lagRows, [2]any{w.Max.Name, w.Max.Lag})
		}
		for i := range w.Steps {
			if w.Steps[i].Lag != nil {
				lagRows = append(lagRows, [2]any{w.Steps[i].Name, w.Steps[i].Lag})
			}
		}
		if w.Half != nil && w.Half.Lag != nil {
			lagRows = append(lagRows, [2]any{w.Half.Name, w.Half.Lag})
		}
	}
	if len(lagRows) > 0 {
		fmt.Fprintf(tw, "\nWRITE -> VISIBLE LAG (from the 202 to the first read showing the version)\n  phase\tsamples\tp50 ms\tp99 ms\tmax ms\tnot visible in 10 s\n")
		for _, lr := range lagRows {
			l := lr[1].(*LagResult)
			fmt.Fprintf(tw, "  %s\t%d\t%.1f\t%.1f\t%.1f\t%d\t\n", lr[0], l.Visible, l.Latency.P50MS, l.Latency.P99MS, l.Latency.MaxMS, l.NotVisible)
		}
		tw.Flush()
	}

	if len(r.Ratios) > 0 {
		fmt.Fprintf(tw, "\n(c) RATIOS fleet / reference\n  what\tfleet\treference\tratio\t\n")
		for _, x := range r.Ratios {
			fmt.Fprintf(tw, "  %s\t%.1f %s\t%.1f %s\t%.2fx\t\n", x.Name, x.Fleet, x.Unit, x.Reference, x.Unit, x.Value)
		}
		tw.Flush()
	}

	fmt.Fprintf(tw, "\nGOALS (issue 7)\n  goal\ttarget\tmeasured\tmet\t\n")
	for _, g := range r.Goals {
		met := "-"
		if g.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*g.Met]
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t\n", g.Name, g.Target, g.Measured, met)
	}
	tw.Flush()
	if r.IdleCPU != nil {
		fmt.Fprintf(out, "  idle CPU by service (cores): %s\n", topServices(r.IdleCPU, 12))
		if started := r.IdleCPU.StartedProcesses; len(started) > 0 {
			fmt.Fprintf(out, "  of which programs started during the window (healthchecks, forks): %s\n",
				topServices(&CPUWindow{ByService: started}, 12))
			fmt.Fprintf(out, "  idle: %s\n", IdleBreakdown(r.IdleCPU))
		}
		if procs := r.IdleCPU.HostProcesses; len(procs) > 0 {
			fmt.Fprintf(out, "  idle host processes outside the containers (cores): %s\n", topServices(&CPUWindow{ByService: procs}, 6))
		}
	}
	if len(r.Memory) > 0 {
		var parts []string
		for _, svc := range []string{"api", "consumer", "nginx", "redis-master", "rabbitmq-1", "postgres"} {
			if mm, ok := r.Memory[svc]; ok {
				parts = append(parts, fmt.Sprintf("%s %.0f MiB", svc, float64(mm.MaxRSS)/mib))
			}
		}
		fmt.Fprintf(out, "  largest RSS seen: %s\n", strings.Join(parts, ", "))
	}

	fmt.Fprintf(out, "\nlate p99: how late an open-loop request started after it was due (the client's own delay), included in its latency\n")
	fmt.Fprintf(out, "\nWHAT LIMITED EACH PHASE (CPU in cores over the phase)\n")
	for _, p := range allPhases(r) {
		if p.Limit != "" {
			fmt.Fprintf(out, "  %-34s %s\n", p.Name+":", p.Limit)
		}
	}
	if bl := f.Backlog; bl != nil && bl.Limit != "" {
		fmt.Fprintf(out, "  %-34s %s\n", "backlog drain:", bl.Limit)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "NOTE      %s\n", n)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(out, "profile   %s   (go tool pprof -top %s)\n", p, p)
	}
}

func row(tw io.Writer, p *Phase) {
	if p == nil {
		return
	}
	loop := fmt.Sprintf("closed, %d conns", p.Connections)
	if p.Loop == "open" {
		loop = fmt.Sprintf("open, %d/s", p.TargetRate)
	}
	errs := fmt.Sprintf("%d", p.Errors)
	if p.Errors > 0 {
		errs = fmt.Sprintf("%d (%.2f%%)", p.Errors, p.ErrorRatio()*100)
	}
	host := ""
	if p.CPU != nil {
		host = fmt.Sprintf("%.2f", p.CPU.HostBusy)
	}
	name := p.Name
	if p.Verdict != "" {
		name += " [" + p.Verdict + "]"
	}
	late := ""
	if p.StartDelay != nil {
		late = fmt.Sprintf("%.1f", p.StartDelay.P99MS)
	}
	fmt.Fprintf(tw, "  %s\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t\n", name, loop, p.PerSecond, p.Latency.P50MS, p.Latency.P99MS, p.Latency.MaxMS, errs, host, late)
}

// allPhases lists every phase of r in order.
func allPhases(r *Result) []*Phase {
	var ps []*Phase
	add := func(p *Phase) {
		if p != nil {
			ps = append(ps, p)
		}
	}
	add(r.Reference.Get)
	add(r.Reference.GetHalf)
	add(r.Fleet.CachedGet)
	add(r.Fleet.CachedGetHalf)
	for i := range r.Fleet.CachedGetSteps {
		add(&r.Fleet.CachedGetSteps[i])
	}
	add(r.Fleet.UncachedGet)
	if w := r.Fleet.Writes; w != nil {
		add(w.Max)
		for i := range w.Steps {
			add(&w.Steps[i])
		}
		add(w.Half)
	}
	add(r.Fleet.Mixed)
	for i := range r.Fleet.Curves {
		for j := range r.Fleet.Curves[i].Steps {
			add(&r.Fleet.Curves[i].Steps[j])
		}
	}
	return ps
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
