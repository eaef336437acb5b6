// Command kvfleet-dashboards writes the Grafana dashboards that
// internal/dashboard defines (generate), and proves them and the alert
// rules against a running fleet's Prometheus, drawing each dashboard from
// the live data into a PNG (live). Usage: kvfleet-dashboards -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/alert"
	"github.com/kvfleet/kvfleet/internal/chart"
	"github.com/kvfleet/kvfleet/internal/dashboard"
	"github.com/kvfleet/kvfleet/internal/livecheck"
	"github.com/kvfleet/kvfleet/internal/promapi"
)

const usage = `Usage:
  kvfleet-dashboards generate [-dir DIR]   write the dashboards' JSON (deploy/grafana/dashboards)
  kvfleet-dashboards live [flags]          run every panel query and alert expression against
                                           Prometheus, draw the dashboards into PNGs; exit 1 on failure
Run from the repository root. "kvfleet-dashboards live -h" lists its flags.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kvfleet-dashboards:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || (args[0] != "generate" && args[0] != "live") {
		fmt.Fprintln(os.Stderr, usage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", "deploy/grafana/dashboards", "where the dashboards' JSON goes")
	port := os.Getenv("KVFLEET_PROMETHEUS_PORT")
	if port == "" {
		port = "9090"
	}
	promURL := fs.String("prometheus", "http://127.0.0.1:"+port, "the fleet's Prometheus (KVFLEET_PROMETHEUS_PORT)")
	window := fs.Duration("window", 15*time.Minute, "how far back the panels' queries look")
	step := fs.Duration("step", 15*time.Second, "resolution of the panels' queries")
	rulesDir := fs.String("rules", "deploy/prometheus/rules", "the alert rules Prometheus should have loaded")
	pngDir := fs.String("png", "docs/dashboards", "where the dashboards' pictures go; empty: none")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "generate" {
		paths, err := dashboard.Write(*dir)
		for _, p := range paths {
			fmt.Fprintln(out, "wrote", p)
		}
		return err
	}
	prom, err := promapi.New(*promURL, 30*time.Second)
	if err != nil {
		return err
	}
	rules, err := alert.Load(*rulesDir)
	if err != nil {
		return err
	}
	end := time.Now().Truncate(*step)
	w := livecheck.Window{Start: end.Add(-*window), End: end, Step: *step}
	report, err := livecheck.Check(ctx, prom, dashboard.Boards(), rules, w)
	if err != nil {
		return err
	}
	if err := report.Write(out); err != nil {
		return err
	}
	fmt.Fprintln(out, report.ScalerNote(ctx, "http://127.0.0.1:9102/metrics"))
	if *pngDir != "" {
		if err := os.MkdirAll(*pngDir, 0o755); err != nil {
			return err
		}
		for _, b := range report.Boards {
			path := filepath.Join(*pngDir, b.Board.UID+".png")
			if err := chart.WritePNG(path, b.Page(w, *promURL)); err != nil {
				return err
			}
			fmt.Fprintln(out, "wrote", path)
		}
	}
	if n := len(report.Problems()); n > 0 {
		return fmt.Errorf("%d problems (listed above)", n)
	}
	return nil
}
