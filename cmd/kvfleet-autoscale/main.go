// Command kvfleet-autoscale is the live test of the autoscaler (make
// autoscale-test): it runs the scaler beside a running fleet, drives idle,
// saturating and idle traffic through the fleet's nginx, with a backlog
// phase before the last idle one in which only writes flow while the
// consumers are held paused (docker pause, an induced fault that is always
// undone), records the timeline and checks the scaler against its bounds
// (internal/autoscale). It writes a JSON result and a summary, and exits 1
// when a check fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kvfleet/kvfleet/internal/autoscale"
	"github.com/kvfleet/kvfleet/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvfleet-autoscale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	opts, err := autoscale.ParseOptions(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	// Progress and the scaler's decision lines go to stderr; stdout
	// carries the summary.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	scalerLog := telemetry.NewLogger(os.Stderr, slog.LevelInfo, "scaler")
	report, err := autoscale.Run(ctx, opts, os.Getenv, os.ReadFile, log, scalerLog)
	if err != nil {
		return err
	}
	autoscale.WriteSummary(os.Stdout, report)
	if err := autoscale.WriteJSON(opts.Report, report); err != nil {
		return err
	}
	fmt.Printf("result: %s\n", opts.Report)
	if !report.Pass {
		return fmt.Errorf("%w (see above and %s)", autoscale.ErrFailed, opts.Report)
	}
	return nil
}
