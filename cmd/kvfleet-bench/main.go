// Command kvfleet-bench is the fleet's benchmark (make bench-fleet): it
// measures the running fleet through its nginx and, in the same run and
// on the same path, a minimal Gin + go-redis server and RabbitMQ's own
// rates, and prints the ratios; the JSON result is for the report.
//
// The same static binary runs the helpers that need the fleet's back
// network, inside throwaway containers: "broker", "backlog", "watch" and
// "fetch". "kvfleet-bench idle" measures the idle fleet's CPU.
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

	"github.com/kvfleet/kvfleet/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvfleet-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && bench.IsHelper(args[0]) {
		return bench.Helper(ctx, args[0], args[1:], os.Getenv, os.Stdout)
	}
	opts, err := bench.ParseOptions(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	// Progress goes to stderr; stdout carries the tables.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	result, runErr := bench.Run(ctx, opts, log)
	if result == nil {
		return runErr
	}
	bench.WriteSummary(os.Stdout, result)
	if err := bench.WriteJSON(opts.Report, result); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Printf("\nresult: %s\n", opts.Report)
	return runErr
}
