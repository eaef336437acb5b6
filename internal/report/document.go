package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/bench"
)

// Doc is what the template renders: every figure already formatted,
// every missing input already explained.
type Doc struct {
	Generated string
	Mode      string
	RunTook   string
	ImgDir    string // relative to the document
	Machine   []string
	Images    [][]string
	Steps     [][]string
	Missing   []string

	Functional Functional
	Perf       Perf
	Reference  Reference
	Faults     Faults
	Scaling    Scaling
	Resources  Resources
	Limits     []string
	Headline   []string
}

// Section is what every section has: why it has no data, or its charts.
type Section struct {
	Missing string
	Charts  []Chart
}

// Build turns the inputs and the charts drawn from them into the
// document's model; imgRel is the image directory relative to the
// document.
func Build(in *Inputs, charts map[string]Chart, imgRel string, now time.Time) *Doc {
	d := &Doc{Generated: now.UTC().Format("2006-01-02 15:04 UTC"), ImgDir: imgRel}
	if r := in.Run; r != nil {
		d.Mode = r.Mode
		if !r.Finished.IsZero() {
			d.RunTook = r.Finished.Sub(r.Started).Round(time.Second).String()
		}
		for _, s := range r.Steps {
			secs := "–"
			if s.Skipped == "" {
				secs = fmt.Sprintf("%.0f s", s.Seconds)
			}
			d.Steps = append(d.Steps, []string{s.Name, "`" + cell(s.Command) + "`", secs, cell(s.Outcome())})
		}
	}
	for _, f := range slices.Sorted(maps.Keys(in.Missing)) {
		d.Missing = append(d.Missing, in.Why(f))
	}
	d.machine(in)
	d.Functional = functional(in)
	d.Perf = perf(in, charts)
	d.Reference = reference(in, charts)
	d.Faults = faults(in, charts)
	d.Scaling = scaling(in, charts)
	d.Resources = resources(in, charts)
	d.Limits = limits(in)
	d.Headline = headline(in)
	return d
}

func (d *Doc) machine(in *Inputs) {
	var h *bench.Machine
	if in.Machine != nil {
		h = &in.Machine.Host
	} else if in.Bench != nil {
		h = &in.Bench.Machine
	}
	if h == nil {
		d.Machine = []string{"not recorded: " + in.Why(FileMachine)}
		return
	}
	d.Machine = []string{
		fmt.Sprintf("CPU: %d cores (%s)", h.Cores, h.CPUModel),
		fmt.Sprintf("memory: %.1f GiB", float64(h.MemoryBytes)/(1<<30)),
		fmt.Sprintf("kernel %s; Docker %s, storage driver %s, cgroup v%s; %s", h.Kernel, h.DockerVersion, h.StorageDriver, h.CgroupVersion, h.GoVersion),
	}
	m := in.Machine
	if m == nil {
		return
	}
	if m.OS != "" {
		d.Machine = append(d.Machine, "operating system: "+m.OS)
	}
	if m.Compose != "" {
		d.Machine = append(d.Machine, "Docker Compose "+m.Compose)
	}
	fleet := fmt.Sprintf("fleet: Compose project %s", m.Project)
	if m.Database != "" {
		fleet += ", database " + m.Database
	}
	if m.ImagesMode != "" {
		fleet += ", images: " + m.ImagesMode
	}
	d.Machine = append(d.Machine, fleet)
	for _, s := range m.Services {
		v := s.Version
		if v == "" {
			v = "–"
		}
		d.Images = append(d.Images, []string{s.Name, fmt.Sprint(s.Replicas), "`" + s.Image + "`", "`" + s.ImageID + "`", v})
	}
}

// Functional is section 1.
type Functional struct {
	Section
	Summary string
	Cases   [][]string
	Output  []string
}

func functional(in *Inputs) Functional {
	e := in.E2E
	if e == nil {
		return Functional{Section: Section{Missing: in.Why(FileE2E)}}
	}
	f := Functional{Output: e.Output}
	counts := map[string]int{}
	for _, c := range e.Cases {
		counts[c.Result]++
		log := strings.Join(c.Log, " ")
		if len(log) > 300 {
			log = log[:300] + "…"
		}
		name := c.Name
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = "↳ " + strings.ReplaceAll(name[i+1:], "_", " ")
		}
		f.Cases = append(f.Cases, []string{cell(name), c.Result, fmt.Sprintf("%.2f s", c.Seconds), cell(log)})
	}
	verdict := "every case passed"
	if !e.Pass {
		verdict = "NOT every case passed"
	}
	f.Summary = fmt.Sprintf("%s: %d cases, %d passed, %d failed, %d skipped (package %s, %s, %.0f s)", verdict, len(e.Cases),
		counts["pass"], counts["fail"]+counts["incomplete"], counts["skip"], e.Package, e.Started.Format("2006-01-02 15:04 UTC"), e.Finished.Sub(e.Started).Seconds())
	return f
}

// Perf is section 2.
type Perf struct {
	Section
	Run    string
	Method []string
	Closed [][]string
	Curves [][]string
	Steps  [][]string
	Lag    [][]string
	// NoCurves says why there is no throughput curve.
	NoCurves string
	Backlog  string
	Broker   string
	Goals    [][]string
	Warnings []string
	Notes    []string
}

func perf(in *Inputs, charts map[string]Chart) Perf {
	b := in.Bench
	if b == nil {
		return Perf{Section: Section{Missing: in.Why(FileBench)}}
	}
	p := Perf{Method: b.Method, Warnings: b.Conditions.Warnings, Notes: b.Notes}
	p.Charts = pick(charts, "throughput", "latency")
	c := b.Conditions
	p.Run = fmt.Sprintf("The fleet benchmark (`kvfleet-bench`, as `make bench-fleet` runs it; %s mode), %s to %s, through %s: %d API replicas, %d consumers, database %s; load average %.2f before",
		b.Mode, b.Started.Format("2006-01-02 15:04:05"), b.Finished.Format("15:04:05 UTC"), b.Target, c.APIReplicas, c.ConsumerReplicas, c.Database, c.LoadAvgBefore[0])
	f := b.Fleet
	type named struct {
		name string
		p    *bench.Phase
	}
	closed := []named{{"cached GET", f.CachedGet}, {"uncached GET", f.UncachedGet}}
	if f.Writes != nil {
		closed = append(closed, named{"PUT (accepted)", f.Writes.Max})
	}
	closed = append(closed, named{"mixed 90/10", f.Mixed})
	for _, x := range closed {
		if x.p == nil {
			continue
		}
		p.Closed = append(p.Closed, []string{x.name, num(x.p.PerSecond), msec(x.p.Latency.P50MS), msec(x.p.Latency.P99MS), msec(x.p.Latency.MaxMS),
			num(float64(x.p.Errors)), hostCPU(x.p.CPU), cell(x.p.Limit)})
	}
	if len(f.Curves) == 0 {
		p.NoCurves = "This benchmark result has no throughput curves (it was run without -curves, or before they existed); run `make report` again for them."
	}
	for _, cv := range f.Curves {
		sat, fail := cv.Saturated(), cv.FirstFailure()
		row := []string{cv.Op, "none passed", "–", "–", "ladder ended without a failure", "–"}
		if sat != nil {
			row[1], row[2], row[3] = num(sat.PerSecond)+"/s", msec(sat.Latency.P99MS), hostCPU(sat.CPU)
		}
		if fail != nil {
			row[4] = fmt.Sprintf("%d/s: %s", fail.TargetRate, fail.Verdict)
			row[5] = limitingResource(fail.CPU)
		} else if sat != nil {
			row[5] = limitingResource(sat.CPU)
		}
		for i := range row {
			row[i] = cell(row[i])
		}
		p.Curves = append(p.Curves, row)
		for _, s := range cv.Steps {
			p.Steps = append(p.Steps, []string{cv.Op, num(float64(s.TargetRate)), num(s.PerSecond), msec(s.Latency.P50MS), msec(s.Latency.P99MS),
				num(float64(s.Errors)), hostCPU(s.CPU), cell(s.Verdict)})
		}
	}
	for _, ph := range lagPhases(b) {
		l := ph.Lag
		offered := "closed loop"
		if ph.TargetRate > 0 {
			offered = num(float64(ph.TargetRate))
		}
		p.Lag = append(p.Lag, []string{ph.Name, offered, fmt.Sprint(l.Visible), msec(l.Latency.P50MS), msec(l.Latency.P90MS),
			msec(l.Latency.P99MS), msec(l.Latency.MaxMS), fmt.Sprint(l.NotVisible)})
	}
	if ch, ok := charts["lag"]; ok {
		p.Charts = append(p.Charts, ch)
	}
	if bl := f.Backlog; bl != nil {
		held := ""
		if bl.Held {
			held = fmt.Sprintf(" (the consumers were paused meanwhile; let go, they started on the backlog %.1f s later)", bl.ResumeSeconds)
		}
		p.Backlog = fmt.Sprintf("%s writes published straight into the write queue at %s/s; %s were waiting when publishing ended%s; the consumers drained them at **%s/s** (%s/s from the first publish to an empty queue). %s",
			num(float64(bl.Messages)), num(bl.PublishPerSecond), num(float64(bl.DepthAtPublishEnd)), held, num(bl.DrainPerSecond), num(bl.AppliedPerSecond), bl.Limit)
	}
	if br := b.Reference.Broker; br != nil {
		p.Broker = fmt.Sprintf("RabbitMQ alone, in the fleet's cluster: %s confirmed publishes/s (%d channels × %d unconfirmed), drained at %s/s.",
			num(br.PublishPerSecond), br.Channels, br.Window, num(br.DrainPerSecond))
	}
	for _, g := range b.Goals {
		met := "not measured"
		if g.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*g.Met]
		}
		p.Goals = append(p.Goals, []string{cell(g.Name), cell(g.Target), cell(g.Measured), met, cell(g.Limit)})
	}
	return p
}

func hostCPU(w *bench.CPUWindow) string {
	if w == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f of %d", w.HostBusy, w.Cores)
}

// limitingResource names where the CPU went in a window: the machine's
// total and its largest users, container by container.
func limitingResource(w *bench.CPUWindow) string {
	if w == nil {
		return "CPU not measured"
	}
	busy := "host CPU"
	if w.Cores > 0 && w.HostBusy >= 0.9*float64(w.Cores) {
		busy = "host CPU saturated"
	}
	return fmt.Sprintf("%s %.2f of %d cores: %s", busy, w.HostBusy, w.Cores, topUsers(w, 4))
}

// topUsers lists the n largest CPU users of a window.
func topUsers(w *bench.CPUWindow, n int) string {
	all := maps.Clone(w.ByService)
	if all == nil {
		all = map[string]float64{}
	}
	all["bench client"] = w.Client
	all["docker-proxy"] = w.DockerProxy
	all["host, outside containers"] = w.Other
	names := slices.Collect(maps.Keys(all))
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(all[b], all[a]), strings.Compare(a, b)) })
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		parts = append(parts, name+" "+cores(all[name]))
	}
	return strings.Join(parts, ", ")
}

func pick(charts map[string]Chart, keys ...string) []Chart {
	var out []Chart
	for _, k := range keys {
		if c, ok := charts[k]; ok {
			out = append(out, c)
		}
	}
	return out
}
