package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The drawing primitives the charts share: one palette, one size, one
// way to write a PNG.

var (
	green  = color.RGBA{0x2e, 0x9e, 0x44, 0xff}
	red    = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	blue   = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	orange = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	purple = color.RGBA{0x94, 0x67, 0xbd, 0xff}
	brown  = color.RGBA{0x8c, 0x56, 0x4b, 0xff}
	gray   = color.RGBA{0x7f, 0x7f, 0x7f, 0xff}
	// faultShade marks a fault held; healShade the time until every
	// container was ready again.
	faultShade = color.NRGBA{0xd6, 0x27, 0x28, 0x40}
	healShade  = color.NRGBA{0xff, 0x7f, 0x0e, 0x30}
	series     = []color.RGBA{blue, orange, green, red, purple, brown, gray}
)

const dpi = 110

// newPlot returns a plot with a title, axis labels and a grid.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 13
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = 10
	p.X.Tick.Marker, p.Y.Tick.Marker = niceTicks{}, niceTicks{}
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{0xe0}
	g.Horizontal.Color = color.Gray{0xe0}
	p.Add(g)
	return p
}

// line adds a named line with point marks.
func line(p *plot.Plot, name string, c color.Color, pts plotter.XYs, dashed, marks bool) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("report: line %q: %w", name, err)
	}
	l.Color, l.Width = c, vg.Points(1.6)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Add(l)
	if !marks {
		if name != "" {
			p.Legend.Add(name, l)
		}
		return nil
	}
	s, err := plotter.NewScatter(pts)
	if err != nil {
		return fmt.Errorf("report: points %q: %w", name, err)
	}
	s.Color, s.Radius, s.Shape = c, vg.Points(2.5), draw.CircleGlyph{}
	p.Add(s)
	if name != "" {
		p.Legend.Add(name, l, s)
	}
	return nil
}

// stepLine adds a named line that holds each value until the next point:
// a count that changes at an instant (replicas).
func stepLine(p *plot.Plot, name string, c color.Color, pts plotter.XYs) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("report: line %q: %w", name, err)
	}
	l.Color, l.Width, l.StepStyle = c, vg.Points(1.8), plotter.PostStep
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// shade fills the vertical band [from, to] over the y range [lo, hi].
func shade(p *plot.Plot, from, to, lo, hi float64, c color.Color) error {
	poly, err := plotter.NewPolygon(plotter.XYs{{X: from, Y: lo}, {X: to, Y: lo}, {X: to, Y: hi}, {X: from, Y: hi}})
	if err != nil {
		return fmt.Errorf("report: shade: %w", err)
	}
	poly.Color = c
	poly.LineStyle.Width = 0
	p.Add(poly)
	return nil
}

// vline draws a thin vertical line at x over [lo, hi].
func vline(p *plot.Plot, x, lo, hi float64, c color.Color) error {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
	if err != nil {
		return fmt.Errorf("report: marker: %w", err)
	}
	l.Color, l.Width = c, vg.Points(0.8)
	l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(l)
	return nil
}

// savePNG writes one plot of w×h points.
func savePNG(p *plot.Plot, w, h vg.Length, path string) error {
	return saveGrid([][]*plot.Plot{{p}}, w, h, path)
}

// saveGrid writes plots tiled in rows and columns into one PNG of w×h
// points; a nil plot leaves its tile empty.
func saveGrid(plots [][]*plot.Plot, w, h vg.Length, path string) error {
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	t := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadX: vg.Points(14), PadY: vg.Points(10),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10)}
	cs := plot.Align(plots, t, dc)
	for i, row := range plots {
		for j, p := range row {
			if p != nil {
				p.Draw(cs[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// niceTicks labels a linear axis at about six round values (1, 2 or 5
// times a power of ten), written as people write them: 2,500 not 2500.00.
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: label(lo)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: label(v)})
		for i := 1; i < 5; i++ {
			if m := v + float64(i)*step/5; m <= hi {
				ticks = append(ticks, plot.Tick{Value: m})
			}
		}
	}
	return ticks
}

func label(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 10:
		return num(v)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// logTicks labels a log axis at 1-2-5 steps, which read better than
// powers of ten alone over the two or three decades latency spans.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if lo <= 0 {
		lo = 0.001
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo*0.999 || v > hi*1.001 {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: trimFloat(v)})
		}
	}
	if len(ticks) < 2 {
		return plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	}
	return ticks
}

func trimFloat(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}
