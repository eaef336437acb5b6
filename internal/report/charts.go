package report

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/kvfleet/kvfleet/internal/bench"
	"github.com/kvfleet/kvfleet/internal/chaos"
)

// Chart is one PNG the report shows.
type Chart struct {
	Name string // file name in the image directory
	Alt  string
}

// DrawCharts draws every chart its inputs allow into imgDir and returns
// them by name (throughput, latency, lag, resources, memory, reference,
// autoscale, chaos-<scenario>).
func DrawCharts(in *Inputs, imgDir string) (map[string]Chart, error) {
	out := map[string]Chart{}
	add := func(key, file, alt string, draw func(path string) (bool, error)) error {
		ok, err := draw(filepath.Join(imgDir, file))
		if err != nil {
			return fmt.Errorf("report: chart %s: %w", file, err)
		}
		if ok {
			out[key] = Chart{Name: file, Alt: alt}
		}
		return nil
	}
	var errs []error
	if b := in.Bench; b != nil {
		errs = append(errs,
			add("throughput", "throughput.png", "throughput against offered load", func(p string) (bool, error) { return throughputChart(b, p) }),
			add("latency", "latency.png", "latency percentiles against offered load", func(p string) (bool, error) { return latencyChart(b, p) }),
			add("lag", "lag.png", "write to visible lag distribution", func(p string) (bool, error) { return lagChart(b, p) }),
			add("resources", "cpu.png", "CPU by service, idle and loaded", func(p string) (bool, error) { return cpuChart(b, p) }),
			add("memory", "memory.png", "resident memory by service", func(p string) (bool, error) { return memoryChart(b, p) }),
		)
	}
	if in.Bench != nil || in.Reference != nil {
		errs = append(errs, add("reference", "reference.png", "the fleet against reference systems",
			func(p string) (bool, error) { return referenceChart(referenceRows(in), p) }))
	}
	if a := in.Autoscale; a != nil {
		errs = append(errs, add("autoscale", "autoscale.png", "autoscaling timeline", func(p string) (bool, error) { return autoscaleChart(a, p) }))
	}
	if c := in.Chaos; c != nil {
		for _, s := range c.Scenarios {
			errs = append(errs, add("chaos-"+s.Name, "chaos-"+s.Name+".png", "chaos scenario "+s.Name,
				func(p string) (bool, error) { return chaosChart(s, p) }))
		}
	}
	return out, errors.Join(errs...)
}

// throughputChart: what each operation answered against what was offered.
func throughputChart(b *bench.Result, path string) (bool, error) {
	curves := b.Fleet.Curves
	if len(curves) == 0 {
		return false, nil
	}
	p := newPlot("Throughput against offered load (open loop, through nginx)", "offered (requests/s)", "answered successfully (requests/s)")
	top := 0.0
	for _, c := range curves {
		for _, s := range c.Steps {
			top = max(top, float64(s.TargetRate), s.PerSecond)
		}
	}
	if err := line(p, "offered = answered", gray, plotter.XYs{{X: 0, Y: 0}, {X: top, Y: top}}, true, false); err != nil {
		return false, err
	}
	var failed plotter.XYs
	for i, c := range curves {
		var pts plotter.XYs
		for _, s := range c.Steps {
			pts = append(pts, plotter.XY{X: float64(s.TargetRate), Y: s.PerSecond})
		}
		name := c.Op
		if s := c.Saturated(); s != nil {
			name += fmt.Sprintf(" (within bound up to %.0f/s)", s.PerSecond)
		}
		if err := line(p, name, series[i%len(series)], pts, false, true); err != nil {
			return false, err
		}
		if f := c.FirstFailure(); f != nil {
			failed = append(failed, plotter.XY{X: float64(f.TargetRate), Y: f.PerSecond})
		}
	}
	if len(failed) > 0 {
		s, err := plotter.NewScatter(failed)
		if err != nil {
			return false, err
		}
		s.Color, s.Radius, s.Shape = red, vg.Points(6), draw.CrossGlyph{}
		p.Add(s)
		p.Legend.Add("the step that failed its bound", s)
	}
	p.X.Min, p.Y.Min = 0, 0
	return true, savePNG(p, 640, 400, path)
}

// latencyChart: p50, p90 and p99 of each operation against offered load,
// one tile per operation, with the curves' p99 bound.
func latencyChart(b *bench.Result, path string) (bool, error) {
	curves := b.Fleet.Curves
	if len(curves) == 0 {
		return false, nil
	}
	bound := latencyBound(curves)
	var tiles []*plot.Plot
	for _, c := range curves {
		p := newPlot(c.Op, "offered (requests/s)", "latency (ms, log)")
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
		lo, hi := 1e9, 0.0
		var p50, p90, p99 plotter.XYs
		for _, s := range c.Steps {
			x := float64(s.TargetRate)
			p50 = append(p50, plotter.XY{X: x, Y: max(s.Latency.P50MS, 0.01)})
			p90 = append(p90, plotter.XY{X: x, Y: max(s.Latency.P90MS, 0.01)})
			p99 = append(p99, plotter.XY{X: x, Y: max(s.Latency.P99MS, 0.01)})
			lo, hi = min(lo, max(s.Latency.P50MS, 0.01)), max(hi, s.Latency.P99MS)
		}
		if len(p50) == 0 {
			continue
		}
		if bound > 0 {
			if err := line(p, fmt.Sprintf("bound %.0f ms", bound), red, plotter.XYs{{X: p50[0].X, Y: bound}, {X: p50[len(p50)-1].X, Y: bound}}, true, false); err != nil {
				return false, err
			}
			hi = max(hi, bound)
		}
		for _, l := range []struct {
			name string
			pts  plotter.XYs
			c    color.Color
		}{{"p50", p50, green}, {"p90", p90, blue}, {"p99", p99, orange}} {
			if err := line(p, l.name, l.c, l.pts, false, true); err != nil {
				return false, err
			}
		}
		p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
		tiles = append(tiles, p)
	}
	return true, saveGrid(grid(tiles, 2), 760, vg.Length(300*((len(tiles)+1)/2)), path)
}

func latencyBound(curves []bench.Curve) float64 {
	for _, c := range curves {
		if c.P99MS > 0 {
			return c.P99MS
		}
	}
	return 0
}

// grid lays plots out in rows of cols.
func grid(ps []*plot.Plot, cols int) [][]*plot.Plot {
	var rows [][]*plot.Plot
	for i := 0; i < len(ps); i += cols {
		row := make([]*plot.Plot, cols)
		copy(row, ps[i:min(i+cols, len(ps))])
		rows = append(rows, row)
	}
	return rows
}

// lagPhases are the write phases whose write → visible lag was sampled,
// in the order the report lists them.
func lagPhases(b *bench.Result) []*bench.Phase {
	var out []*bench.Phase
	if w := b.Fleet.Writes; w != nil {
		for _, p := range []*bench.Phase{w.Half, w.Max} {
			if p != nil && p.Lag != nil && p.Lag.Visible > 0 {
				out = append(out, p)
			}
		}
	}
	for _, c := range b.Fleet.Curves {
		for i := range c.Steps {
			if s := &c.Steps[i]; s.Lag != nil && s.Lag.Visible > 0 {
				out = append(out, s)
			}
		}
	}
	return out
}

// lagChart: the distribution (CDF) of write → visible lag per phase,
// from the raw samples, or from the percentiles of a result that kept
// none.
func lagChart(b *bench.Result, path string) (bool, error) {
	phases := lagPhases(b)
	if len(phases) == 0 {
		return false, nil
	}
	p := newPlot("Write → visible lag (from the 202 to the first read that shows it)", "lag (ms, log)", "share of sampled writes visible")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, logTicks{}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(30)
	lo, hi := 1e9, 0.0
	for i, ph := range phases {
		pts := cdf(ph.Lag)
		for _, pt := range pts {
			lo, hi = min(lo, pt.X), max(hi, pt.X)
		}
		name := fmt.Sprintf("%s (%d, p99 %.0f ms)", ph.Name, ph.Lag.Visible, ph.Lag.Latency.P99MS)
		if len(ph.Lag.SamplesMS) == 0 {
			name += " [percentiles]"
		}
		if err := line(p, name, series[i%len(series)], pts, false, len(ph.Lag.SamplesMS) == 0); err != nil {
			return false, err
		}
	}
	p.X.Min, p.X.Max = max(lo/1.3, 0.1), hi*1.3
	p.Y.Min, p.Y.Max = 0, 1.02
	return true, savePNG(p, 720, 420, path)
}

// cdf returns the empirical distribution of lag as a step line.
func cdf(l *bench.LagResult) plotter.XYs {
	if len(l.SamplesMS) == 0 {
		s := l.Latency
		return plotter.XYs{{X: max(s.P50MS, 0.1), Y: 0.5}, {X: max(s.P90MS, 0.1), Y: 0.9}, {X: max(s.P99MS, 0.1), Y: 0.99}, {X: max(s.P999MS, 0.1), Y: 0.999}, {X: max(s.MaxMS, 0.1), Y: 1}}
	}
	v := slices.Clone(l.SamplesMS)
	slices.Sort(v)
	n := float64(len(v))
	pts := plotter.XYs{{X: max(v[0], 0.1), Y: 0}}
	for i, x := range v {
		x = max(x, 0.1)
		pts = append(pts, plotter.XY{X: x, Y: float64(i) / n}, plotter.XY{X: x, Y: float64(i+1) / n})
	}
	return pts
}

// cpuChart: CPU per service when idle and in the loaded phases, in cores,
// horizontal bars, the busiest service on top.
func cpuChart(b *bench.Result, path string) (bool, error) {
	cols := resourceColumns(b)
	if len(cols) == 0 {
		return false, nil
	}
	rows := cpuRows(cols)
	names := make([]string, len(rows))
	for i, r := range rows {
		names[len(rows)-1-i] = r
	}
	p := newPlot("CPU by service (cores; the machine has "+fmt.Sprint(b.Machine.Cores)+")", "cores", "")
	p.Legend.Top, p.Legend.Left = false, false
	barW := vg.Points(min(28/float64(len(cols)), 8))
	for i, c := range cols {
		vals := make(plotter.Values, len(names))
		for j, n := range names {
			vals[j] = cpuOf(c.w, n)
		}
		bc, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return false, err
		}
		bc.Horizontal = true
		bc.Color = series[i%len(series)]
		bc.LineStyle.Width = 0
		bc.Offset = barW * vg.Length(float64(len(cols)-1)/2-float64(i))
		p.Add(bc)
		p.Legend.Add(c.name, bc)
	}
	p.NominalY(names...)
	p.X.Min = 0
	return true, savePNG(p, 720, vg.Length(max(300, 26*len(names)+90)), path)
}

// resourceColumn is one window whose CPU by service the report shows.
type resourceColumn struct {
	name string
	w    *bench.CPUWindow
}

// resourceColumns are idle and the busiest phase of each kind of load.
func resourceColumns(b *bench.Result) []resourceColumn {
	var cols []resourceColumn
	if b.IdleCPU != nil {
		cols = append(cols, resourceColumn{fmt.Sprintf("idle (%.0f s)", b.IdleCPU.Seconds), b.IdleCPU})
	}
	add := func(name string, p *bench.Phase) {
		if p != nil && p.CPU != nil {
			cols = append(cols, resourceColumn{fmt.Sprintf("%s, %.0f/s", name, p.PerSecond), p.CPU})
		}
	}
	add("cached GET", b.Fleet.CachedGet)
	add("uncached GET", b.Fleet.UncachedGet)
	if w := b.Fleet.Writes; w != nil {
		add("PUT", w.Max)
	}
	add("mixed 90/10", b.Fleet.Mixed)
	return cols
}

// cpuOf is a window's CPU for a row of the chart: a service, or the
// benchmark client, Docker's proxy and the rest of the host.
func cpuOf(w *bench.CPUWindow, row string) float64 {
	switch row {
	case "bench client":
		return w.Client
	case "docker-proxy":
		return w.DockerProxy
	case "host, outside containers":
		return w.Other
	}
	return w.ByService[row]
}

// cpuRows lists the rows worth a bar: anything that used at least 0.02
// cores in some column, busiest first.
func cpuRows(cols []resourceColumn) []string {
	peak := map[string]float64{}
	for _, c := range cols {
		for s, v := range c.w.ByService {
			peak[s] = max(peak[s], v)
		}
		peak["bench client"] = max(peak["bench client"], c.w.Client)
		peak["docker-proxy"] = max(peak["docker-proxy"], c.w.DockerProxy)
		peak["host, outside containers"] = max(peak["host, outside containers"], c.w.Other)
	}
	var rows []string
	for s, v := range peak {
		if v >= 0.02 {
			rows = append(rows, s)
		}
	}
	slices.SortFunc(rows, func(a, b string) int { return cmp.Or(cmp.Compare(peak[b], peak[a]), strings.Compare(a, b)) })
	return rows
}

// memoryChart: resident memory per service, idle and the largest seen
// under load.
func memoryChart(b *bench.Result, path string) (bool, error) {
	if len(b.Memory) == 0 {
		return false, nil
	}
	names := slices.Collect(maps.Keys(b.Memory))
	slices.SortFunc(names, func(x, y string) int {
		return cmp.Or(cmp.Compare(b.Memory[x].MaxRSS, b.Memory[y].MaxRSS), strings.Compare(y, x))
	})
	p := newPlot("Resident memory by service (MiB, largest replica)", "MiB", "")
	p.Legend.Top, p.Legend.Left = false, false
	cols := []struct {
		name string
		m    map[string]bench.Memory
	}{{"idle", b.IdleMemory}, {"largest under load", b.Memory}}
	barW := vg.Points(8)
	shown := 0
	for i, c := range cols {
		if len(c.m) == 0 {
			continue
		}
		vals := make(plotter.Values, len(names))
		for j, n := range names {
			vals[j] = float64(c.m[n].MaxRSS) / (1 << 20)
		}
		bc, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return false, err
		}
		bc.Horizontal = true
		bc.Color = []color.Color{blue, orange}[i]
		bc.LineStyle.Width = 0
		bc.Offset = barW * vg.Length(0.5-float64(i))
		p.Add(bc)
		p.Legend.Add(c.name, bc)
		shown++
	}
	p.NominalY(names...)
	p.X.Min = 0
	return shown > 0, savePNG(p, 720, vg.Length(max(300, 22*len(names)+90)), path)
}

// referenceChart: the fleet's and the reference systems' rates, as bars.
func referenceChart(rows []RefRow, path string) (bool, error) {
	var names []string
	var vals plotter.Values
	var colors []color.Color
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if r.PerSecond <= 0 {
			continue
		}
		names = append(names, r.Name)
		vals = append(vals, r.PerSecond)
		colors = append(colors, map[bool]color.Color{true: blue, false: gray}[r.Fleet])
	}
	if len(vals) == 0 {
		return false, nil
	}
	p := newPlot("Requests per second: the fleet (blue) and reference systems (gray), same machine", "per second", "")
	for i := range vals {
		one := make(plotter.Values, len(vals))
		one[i] = vals[i]
		bc, err := plotter.NewBarChart(one, vg.Points(14))
		if err != nil {
			return false, err
		}
		bc.Horizontal = true
		bc.Color = colors[i]
		bc.LineStyle.Width = 0
		p.Add(bc)
	}
	p.NominalY(names...)
	p.X.Min = 0
	return true, savePNG(p, 760, vg.Length(max(260, 24*len(names)+90)), path)
}

// chaosChart: writes and reads per second by outcome through one
// scenario, the fault held shaded red and the recovery orange.
func chaosChart(s chaos.Result, path string) (bool, error) {
	if len(s.Writes.SentPerSecond) == 0 && len(s.Reads.SentPerSecond) == 0 {
		return false, nil
	}
	win := faultWindow(s.Events)
	var tiles []*plot.Plot
	for _, st := range []struct {
		name string
		s    chaos.Stream
	}{{"writes", s.Writes}, {"reads", s.Reads}} {
		p := newPlot(fmt.Sprintf("%s: %s per second by outcome", s.Name, st.name), "seconds from the start of the load", st.name+" per second")
		p.Legend.Top, p.Legend.Left = true, false
		var ok, failed plotter.XYs
		top := 1.0
		for i, sent := range st.s.SentPerSecond {
			a := 0.0
			if i < len(st.s.PerSecond) {
				a = st.s.PerSecond[i]
			}
			good := float64(sent) * a
			ok = append(ok, plotter.XY{X: float64(i), Y: good})
			failed = append(failed, plotter.XY{X: float64(i), Y: float64(sent) - good})
			top = max(top, float64(sent))
		}
		if len(ok) == 0 {
			continue
		}
		if win.injected >= 0 {
			if err := shade(p, win.injected, win.healed, 0, top*1.35, faultShade); err != nil {
				return false, err
			}
			if win.ready > win.healed {
				if err := shade(p, win.healed, win.ready, 0, top*1.35, healShade); err != nil {
					return false, err
				}
			}
		}
		if err := line(p, "ok", green, ok, false, false); err != nil {
			return false, err
		}
		if err := line(p, "failed or not sent", red, failed, false, false); err != nil {
			return false, err
		}
		p.Y.Min, p.Y.Max = 0, top*1.35
		p.X.Min = 0
		tiles = append(tiles, p)
	}
	return true, saveGrid(grid(tiles, 1), 720, 430, path)
}

// window is when a scenario's fault was injected, healed and the fleet
// ready again, in seconds from the start of its load; -1 for none.
type window struct{ injected, healed, ready float64 }

func faultWindow(events []chaos.Event) window {
	w := window{-1, -1, -1}
	for _, e := range events {
		switch {
		case e.What == "injecting the fault":
			w.injected = e.At
		case e.What == "healing":
			w.healed = e.At
		case strings.HasPrefix(e.What, "every container ready again"):
			w.ready = e.At
		}
	}
	if w.injected >= 0 && w.healed < w.injected {
		w.healed = w.injected
	}
	return w
}

// panel is one tile of a timeline; trace one of its lines.
type panel struct {
	title, y string
	lines    []trace
	steps    bool // counts: hold each value until the next sample
}

type trace struct {
	name string
	c    color.Color
	get  func(i int) float64
}

// autoscaleChart: the load, the replicas, the API's CPU and in-flight
// requests and the backlog over the test, decisions marked.
func autoscaleChart(a *Autoscale, path string) (bool, error) {
	if len(a.Timeline) == 0 {
		return false, nil
	}
	tl := a.Timeline
	panels := []panel{
		{"Load", "requests/s", []trace{
			{"offered", gray, func(i int) float64 { return tl[i].Offered }},
			{"ok", green, func(i int) float64 { return tl[i].OK }},
			{"failed", red, func(i int) float64 { return tl[i].Failed }},
		}, false},
		{"Replicas", "replicas", []trace{
			{"api", blue, func(i int) float64 { return tl[i].APIReplicas }},
			{"consumer", orange, func(i int) float64 { return tl[i].ConsumerReplicas }},
		}, true},
		{"API CPU per replica (the scaler's signal)", "cores", []trace{{"api CPU", purple, func(i int) float64 { return tl[i].APICPU }}}, false},
		{"API requests in flight per replica (the scaler's signal)", "requests", []trace{{"in flight", brown, func(i int) float64 { return tl[i].APIInFlight }}}, false},
		{"Write queue backlog", "messages", []trace{{"backlog", blue, func(i int) float64 { return tl[i].Backlog }}}, false},
	}
	var tiles []*plot.Plot
	for _, pn := range panels {
		p := newPlot(pn.title, "seconds from the start of the test", pn.y)
		p.Legend.Top, p.Legend.Left = true, true
		top := 1.0
		for _, l := range pn.lines {
			for i := range tl {
				top = max(top, l.get(i))
			}
		}
		for _, d := range a.Decisions {
			if err := vline(p, d.T, 0, top*1.15, map[bool]color.Color{true: blue, false: orange}[d.Service == "api"]); err != nil {
				return false, err
			}
		}
		for _, l := range pn.lines {
			pts := make(plotter.XYs, len(tl))
			for i := range tl {
				pts[i] = plotter.XY{X: tl[i].T, Y: l.get(i)}
			}
			draw := func() error { return line(p, l.name, l.c, pts, false, false) }
			if pn.steps {
				draw = func() error { return stepLine(p, l.name, l.c, pts) }
			}
			if err := draw(); err != nil {
				return false, err
			}
		}
		p.Y.Min, p.Y.Max = 0, top*1.3
		tiles = append(tiles, p)
	}
	return true, saveGrid(grid(tiles, 1), 760, 900, path)
}
