// Command kvfleet-chaos is the fleet's chaos suite (make chaos): open-loop
// writes and reads through nginx while it injects, one at a time, faults
// into the containers of one Compose project and heals them, then checks
// that every acknowledged write converged and that each scenario met its
// availability thresholds. It writes a JSON report and a summary, and
// exits 1 when a scenario fails.
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

	"github.com/kvfleet/kvfleet/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// On the first signal the suite heals the fault in place and stops; a
	// second one ends the program at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvfleet-chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	opts, err := chaos.ParseOptions(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	if opts.List {
		return chaos.WriteSchedule(os.Stdout, opts)
	}
	// Progress goes to stderr; stdout carries the summary.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	report, err := chaos.Run(ctx, opts, log)
	if err != nil {
		return err
	}
	chaos.WriteSummary(os.Stdout, report)
	if err := chaos.WriteJSON(opts.Report, report); err != nil {
		return err
	}
	fmt.Printf("report: %s\n", opts.Report)
	if !report.Pass {
		return fmt.Errorf("%w (see above and %s)", chaos.ErrFailed, opts.Report)
	}
	return nil
}
