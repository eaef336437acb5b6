package livecheck

import (
	"fmt"
	"sort"

	"github.com/kvfleet/kvfleet/internal/chart"
	"github.com/kvfleet/kvfleet/internal/dashboard"
)

// Page turns a board's results into the picture of it: each panel's
// series named as Grafana's legend names them, and a note on a panel
// without data saying why.
func (b BoardResult) Page(w Window, source string) chart.Page {
	page := chart.Page{
		Title: b.Board.Title,
		Subtitle: fmt.Sprintf("%s  ·  %s to %s UTC, step %s  ·  from %s by cmd/kvfleet-dashboards (the Grafana dashboard %s)",
			b.Board.Description, w.Start.UTC().Format("2006-01-02 15:04"), w.End.UTC().Format("15:04"), w.Step, source, b.Board.UID),
		Start: w.Start, End: w.End,
	}
	results := map[string]PanelResult{}
	for _, p := range b.Panels {
		results[p.Panel.Title] = p
	}
	for _, row := range b.Board.Rows {
		cr := chart.Row{Title: row.Title}
		for _, p := range row.Panels {
			pr := results[p.Title]
			cp := chart.Panel{Title: p.Title, Unit: p.Unit, Stat: p.Kind == dashboard.Stat,
				Width: int(p.Width), Height: int(p.Height)}
			for _, q := range pr.Queries {
				lines := make([]chart.Line, 0, len(q.Series))
				for _, s := range q.Series {
					l := chart.Line{Name: q.Query.SeriesName(s.Labels)}
					for _, pt := range s.Points {
						l.Points = append(l.Points, chart.Point{T: pt.T, V: pt.V})
					}
					lines = append(lines, l)
				}
				sort.SliceStable(lines, func(i, j int) bool { return lines[i].Name < lines[j].Name })
				cp.Lines = append(cp.Lines, lines...)
			}
			switch problems := pr.Problems(); {
			case len(problems) > 0:
				cp.Note = "FAILED: " + problems[0]
			case !pr.HasData() && pr.Excused != "":
				cp.Note = "no data, excused: " + pr.Excused
			}
			cr.Panels = append(cr.Panels, cp)
		}
		page.Rows = append(page.Rows, cr)
	}
	return page
}
