// Package chart draws a dashboard's panels from query results into one
// PNG image per dashboard, with gonum/plot, so that the dashboards can be
// seen without Grafana (README, docs/dashboards).
package chart

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Point is one sample of a line.
type Point struct {
	T time.Time
	V float64
}

// Line is one named series of a panel.
type Line struct {
	Name   string
	Points []Point
}

// Panel is one chart (or, when Stat, one row of big numbers: each line's
// latest value).
type Panel struct {
	Title string
	// Unit is Grafana's unit id (see Format).
	Unit string
	Stat bool
	// Width in grid columns (24 in a row), Height in grid rows, as in
	// Grafana.
	Width, Height int
	Lines         []Line
	// Note is written across the panel, e.g. why it has no data.
	Note string
}

// Row is a titled band of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// Page is one dashboard over a time range.
type Page struct {
	Title, Subtitle string
	Start, End      time.Time
	Rows            []Row
}

// Sizes, in points (the image is drawn at 96 dpi: 4/3 pixel a point).
const (
	pageWidth  vg.Length = 1350
	margin     vg.Length = 8
	headerH    vg.Length = 46
	rowTitleH  vg.Length = 22
	gridRowH   vg.Length = 24
	gap        vg.Length = 6
	legendLine vg.Length = 10
	dpi                  = 96
	maxLines             = 12
)

var (
	background = color.RGBA{R: 0xfb, G: 0xfb, B: 0xfc, A: 0xff}
	panelFill  = color.White
	border     = color.RGBA{R: 0xd8, G: 0xd9, B: 0xde, A: 0xff}
	textColor  = color.RGBA{R: 0x20, G: 0x22, B: 0x26, A: 0xff}
	muted      = color.RGBA{R: 0x6e, G: 0x73, B: 0x7d, A: 0xff}
	// Grafana's classic palette.
	palette = []color.RGBA{
		{0x73, 0xbf, 0x69, 0xff}, {0xf2, 0xcc, 0x0c, 0xff}, {0x56, 0x94, 0xf2, 0xff},
		{0xff, 0x98, 0x30, 0xff}, {0xf2, 0x49, 0x5c, 0xff}, {0xb8, 0x77, 0xd9, 0xff},
		{0x37, 0x87, 0x2d, 0xff}, {0xe0, 0xb4, 0x00, 0xff}, {0x1f, 0x60, 0xc4, 0xff},
		{0xfa, 0x64, 0x00, 0xff}, {0xc4, 0x16, 0x2a, 0xff}, {0x8f, 0x3b, 0xb8, 0xff},
	}
)

// PNG draws the page and writes it as a PNG image.
func PNG(p Page, w io.Writer) error {
	height := headerH + margin
	for _, r := range p.Rows {
		height += rowTitleH + rowHeight(r)
	}
	img := vgimg.NewWith(vgimg.UseWH(pageWidth, height), vgimg.UseDPI(dpi))
	c := draw.New(img)
	c.SetColor(background)
	c.Fill(c.Rectangle.Path())

	top := height - margin
	c.FillText(style(16, textColor, draw.XLeft, draw.YTop), vg.Point{X: margin, Y: top}, p.Title)
	c.FillText(style(9, muted, draw.XLeft, draw.YTop), vg.Point{X: margin, Y: top - 22}, p.Subtitle)
	top -= headerH
	col := (pageWidth - 2*margin) / 24
	for _, r := range p.Rows {
		c.FillText(style(11, textColor, draw.XLeft, draw.YTop), vg.Point{X: margin, Y: top - 4}, r.Title)
		top -= rowTitleH
		x, y, lineH := vg.Length(0), top, vg.Length(0)
		for _, pn := range r.Panels {
			if x+vg.Length(pn.Width)*col > pageWidth-2*margin+0.01 {
				x, y, lineH = 0, y-lineH, 0
			}
			w, h := vg.Length(pn.Width)*col, vg.Length(pn.Height)*gridRowH
			area := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: margin + x + gap/2, Y: y - h + gap/2},
				Max: vg.Point{X: margin + x + w - gap/2, Y: y - gap/2},
			}}
			if err := drawPanel(area, pn, p.Start, p.End); err != nil {
				return fmt.Errorf("chart: panel %q: %w", pn.Title, err)
			}
			x += w
			lineH = max(lineH, h)
		}
		top -= rowHeight(r)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("chart: writing the PNG: %w", err)
	}
	return nil
}

// WritePNG draws the page into the PNG file at path.
func WritePNG(path string, p Page) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := PNG(p, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// rowHeight is the height of a row's panels, wrapped at 24 columns.
func rowHeight(r Row) vg.Length {
	total, lineW, lineH := 0, 0, 0
	for _, p := range r.Panels {
		if lineW+p.Width > 24 {
			total, lineW, lineH = total+lineH, 0, 0
		}
		lineW += p.Width
		lineH = max(lineH, p.Height)
	}
	return vg.Length(total+lineH) * gridRowH
}

func style(size vg.Length, c color.Color, x draw.XAlignment, y draw.YAlignment) draw.TextStyle {
	return draw.TextStyle{
		Color:   c,
		Font:    font.Font{Typeface: "Liberation", Variant: "Sans", Size: size},
		XAlign:  x,
		YAlign:  y,
		Handler: plot.DefaultTextHandler,
	}
}

// drawPanel draws one panel into its area of the page.
func drawPanel(c draw.Canvas, p Panel, start, end time.Time) error {
	c.SetColor(panelFill)
	c.Fill(c.Rectangle.Path())
	c.SetColor(border)
	c.SetLineWidth(0.8)
	c.Stroke(c.Rectangle.Path())
	inner := draw.Crop(c, 4, -4, 4, -4)
	if p.Stat {
		drawStat(inner, p)
		return nil
	}
	return drawSeries(inner, p, start, end)
}

// drawStat writes each line's latest value in big figures, with its name.
func drawStat(c draw.Canvas, p Panel) {
	c.FillText(style(9, textColor, draw.XLeft, draw.YTop), vg.Point{X: c.Min.X + 2, Y: c.Max.Y - 2}, p.Title)
	if p.Note != "" || len(p.Lines) == 0 {
		note(c, p.Note)
		return
	}
	slot := (c.Max.X - c.Min.X) / vg.Length(len(p.Lines))
	mid := (c.Min.Y+c.Max.Y)/2 - 4
	for i, l := range p.Lines {
		x := c.Min.X + slot*vg.Length(i) + slot/2
		v, ok := latest(l.Points)
		text := "–"
		if ok {
			text = Format(p.Unit, v)
		}
		c.FillText(style(20, palette[i%len(palette)], draw.XCenter, draw.YCenter), vg.Point{X: x, Y: mid}, text)
		if len(p.Lines) > 1 || l.Name != "" {
			c.FillText(style(7.5, muted, draw.XCenter, draw.YTop), vg.Point{X: x, Y: mid - 14}, l.Name)
		}
	}
}

// note writes a panel's note, or "no data", across it.
func note(c draw.Canvas, text string) {
	if text == "" {
		text = "no data"
	}
	mid := vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: (c.Min.Y + c.Max.Y) / 2}
	sty := style(8, muted, draw.XCenter, draw.YCenter)
	lines := wrap(sty, text, c.Max.X-c.Min.X-8)
	// A white box under the text keeps grid lines from crossing it.
	width := vg.Length(0)
	for _, line := range lines {
		width = max(width, sty.Width(line))
	}
	c.SetColor(panelFill)
	c.Fill(vg.Rectangle{
		Min: vg.Point{X: mid.X - width/2 - 4, Y: mid.Y - vg.Length(len(lines)-1)*10 - 7},
		Max: vg.Point{X: mid.X + width/2 + 4, Y: mid.Y + 7},
	}.Path())
	for i, line := range lines {
		c.FillText(sty, vg.Point{X: mid.X, Y: mid.Y - vg.Length(i)*10}, line)
	}
}

// wrap splits text into lines no wider than width.
func wrap(sty draw.TextStyle, text string, width vg.Length) []string {
	var lines []string
	line := ""
	word := ""
	flush := func() {
		switch {
		case line == "":
			line = word
		case sty.Width(line+" "+word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
		word = ""
	}
	for _, r := range text {
		if r == ' ' {
			flush()
			continue
		}
		word += string(r)
	}
	flush()
	return append(lines, line)
}

func latest(points []Point) (float64, bool) {
	for i := len(points) - 1; i >= 0; i-- {
		if v := points[i].V; !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	return 0, false
}

// drawSeries draws a time-series panel: the plot, and its legend below.
func drawSeries(c draw.Canvas, p Panel, start, end time.Time) error {
	lines := p.Lines
	hidden := 0
	if len(lines) > maxLines {
		hidden = len(lines) - maxLines
		lines = lines[:maxLines]
	}
	legend := legendRows(c, lines, hidden)
	plotArea := draw.Crop(c, 0, 0, vg.Length(len(legend))*legendLine+2, 0)

	pl := plot.New()
	pl.BackgroundColor = color.Transparent
	pl.Title.Text = p.Title
	pl.Title.TextStyle = style(9, textColor, draw.XLeft, draw.YTop)
	pl.Title.Padding = 2
	pl.X.Min, pl.X.Max = unix(start), unix(end)
	pl.X.Tick.Marker = plot.TimeTicks{Format: "15:04", Time: func(f float64) time.Time {
		return time.Unix(int64(f), 0).UTC()
	}}
	pl.Y.Tick.Marker = unitTicks(p.Unit)
	for _, a := range []*plot.Axis{&pl.X, &pl.Y} {
		a.Tick.Label = style(7, muted, draw.XCenter, draw.YTop)
		a.Color, a.Tick.Color = border, border
		a.Tick.Length = 3
		a.Padding = 2
	}
	pl.Y.Tick.Label.XAlign = draw.XRight
	pl.Y.Tick.Label.YAlign = draw.YCenter
	pl.Add(plotter.NewGrid())

	lo, hi, any := math.Inf(1), math.Inf(-1), false
	for i, l := range lines {
		col := palette[i%len(palette)]
		for _, seg := range segments(l.Points) {
			for _, pt := range seg {
				lo, hi, any = math.Min(lo, pt.Y), math.Max(hi, pt.Y), true
			}
			if len(seg) == 1 {
				s, err := plotter.NewScatter(seg)
				if err != nil {
					return err
				}
				s.GlyphStyle.Color, s.GlyphStyle.Radius, s.GlyphStyle.Shape = col, 1.5, draw.CircleGlyph{}
				pl.Add(s)
				continue
			}
			ln, err := plotter.NewLine(seg)
			if err != nil {
				return err
			}
			ln.Color, ln.Width = col, 1.2
			pl.Add(ln)
		}
	}
	if !any {
		lo, hi = 0, 1
	}
	if lo >= 0 {
		lo = 0
	}
	if hi <= lo {
		hi = lo + 1
	}
	pl.Y.Min, pl.Y.Max = lo, hi+(hi-lo)*0.05
	pl.Draw(plotArea)
	if !any || p.Note != "" {
		note(draw.Crop(plotArea, 30, 0, 14, -14), p.Note)
	}
	drawLegend(c, legend)
	return nil
}

// legendEntry is a swatch and a name placed in the legend.
type legendEntry struct {
	name  string
	color color.Color
	x     vg.Length
}

// legendRows lays the legend out in rows below the plot.
func legendRows(c draw.Canvas, lines []Line, hidden int) [][]legendEntry {
	sty := style(7, textColor, draw.XLeft, draw.YCenter)
	width := c.Max.X - c.Min.X
	var rows [][]legendEntry
	var row []legendEntry
	x := vg.Length(0)
	add := func(name string, col color.Color) {
		w := 12 + sty.Width(name) + 10
		if x+w > width && len(row) > 0 {
			rows, row, x = append(rows, row), nil, 0
		}
		row = append(row, legendEntry{name: name, color: col, x: x})
		x += w
	}
	for i, l := range lines {
		add(l.Name, palette[i%len(palette)])
	}
	if hidden > 0 {
		add(fmt.Sprintf("(+%d more)", hidden), muted)
	}
	if len(row) > 0 {
		rows = append(rows, row)
	}
	return rows
}

func drawLegend(c draw.Canvas, rows [][]legendEntry) {
	sty := style(7, textColor, draw.XLeft, draw.YCenter)
	for i, row := range rows {
		y := c.Min.Y + vg.Length(len(rows)-i)*legendLine - legendLine/2
		for _, e := range row {
			c.SetColor(e.color)
			c.Fill(vg.Rectangle{Min: vg.Point{X: c.Min.X + e.x, Y: y - 1.5}, Max: vg.Point{X: c.Min.X + e.x + 9, Y: y + 1.5}}.Path())
			c.FillText(sty, vg.Point{X: c.Min.X + e.x + 12, Y: y}, e.name)
		}
	}
}

// segments splits points at NaNs: gonum's lines take numbers only, and a
// gap is a gap in Grafana too.
func segments(points []Point) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for _, p := range points {
		if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
			if len(cur) > 0 {
				out, cur = append(out, cur), nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: unix(p.T), Y: p.V})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func unix(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// unitTicks labels the default ticks in the panel's unit.
type unitTicks string

func (u unitTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = Format(string(u), ticks[i].Value)
		}
	}
	return ticks
}
