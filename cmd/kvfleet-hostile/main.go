// Command kvfleet-hostile runs the hostile-client suite against a running
// fleet (make hostile): see internal/hostile.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kvfleet/kvfleet/internal/hostile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var errFailed = errors.New("kvfleet-hostile: some checks failed (above)")

func run(ctx context.Context, args []string) error {
	o, err := hostile.ParseOptions(args)
	if err != nil {
		return err
	}
	rep, err := hostile.Run(ctx, o, os.Stdout)
	if o.Out != "" {
		if werr := hostile.WriteReport(o.Out, rep); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Printf("report: %s\n", o.Out)
	}
	switch {
	case err != nil:
		return err
	case !rep.Passed:
		return errFailed
	}
	fmt.Println("every check passed")
	return nil
}
