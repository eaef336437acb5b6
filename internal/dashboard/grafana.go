package dashboard

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	grafana "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// schemaVersion is the dashboard schema of the Grafana the fleet pins
// (11.2, deploy/images.env). The SDK writes its own, newer one, which that
// Grafana would not migrate from.
const schemaVersion = 39

// dataSourceUID is the Prometheus data source's uid in
// deploy/grafana/provisioning/datasources/prometheus.yml.
const dataSourceUID = "prometheus"

// JSON returns the board as Grafana's dashboard JSON, indented, with a
// final newline: the bytes of its file under deploy/grafana/dashboards.
func (b Board) JSON() ([]byte, error) {
	ds := common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(dataSourceUID)}
	//lint:ignore SA1019 dashboardv2 is Grafana 12's schema; the pinned Grafana 11.2 reads only this one.
	builder := grafana.NewDashboardBuilder(b.Title).
		Uid(b.UID).
		Description(b.Description).
		Tags([]string{"kvfleet"}).
		Readonly().
		Time("now-30m", "now").
		Refresh("10s").
		Timezone(common.TimeZoneBrowser).
		Tooltip(grafana.DashboardCursorSyncCrosshair)
	id := uint32(0)
	for _, r := range b.Rows {
		id++
		builder.WithRow(grafana.NewRowBuilder(r.Title).Id(id))
		for _, p := range r.Panels {
			id++
			builder.WithPanel(panelBuilder(p, id, ds))
		}
	}
	d, err := builder.Build()
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", b.UID, err)
	}
	d.SchemaVersion = schemaVersion
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", b.UID, err)
	}
	return append(out, '\n'), nil
}

func targets(p Panel, ds common.DataSourceRef) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(p.Queries))
	for i, q := range p.Queries {
		out = append(out, prometheus.NewDataqueryBuilder().
			RefId(string(rune('A'+i))).
			Datasource(ds).
			Expr(q.Expr).
			LegendFormat(q.Legend).
			Range())
	}
	return out
}

func panelBuilder(p Panel, id uint32, ds common.DataSourceRef) cog.Builder[grafana.Panel] {
	if p.Kind == Stat {
		return stat.NewPanelBuilder().
			Id(id).
			Title(p.Title).
			Description(p.Description).
			Datasource(ds).
			Span(p.Width).
			Height(p.Height).
			Unit(p.Unit).
			Targets(targets(p, ds)).
			GraphMode(common.BigValueGraphModeArea).
			ColorMode(common.BigValueColorModeNone).
			TextMode(common.BigValueTextModeValueAndName).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
	}
	return timeseries.NewPanelBuilder().
		Id(id).
		Title(p.Title).
		Description(p.Description).
		Datasource(ds).
		Span(p.Width).
		Height(p.Height).
		Unit(p.Unit).
		Targets(targets(p, ds)).
		FillOpacity(10).
		LineWidth(1).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderNone))
}

// Write writes every board's JSON into dir and returns the files written.
func Write(dir string) ([]string, error) {
	var paths []string
	for _, b := range Boards() {
		raw, err := b.JSON()
		if err != nil {
			return paths, err
		}
		path := filepath.Join(dir, b.File)
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			return paths, fmt.Errorf("dashboard: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
