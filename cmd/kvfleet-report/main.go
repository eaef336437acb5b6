// Command kvfleet-report makes the test report (make report): scripts/
// report.sh runs the project's tools through it, one step at a time, and
// it renders docs/report.md and its charts from their JSON results.
//
//	kvfleet-report start -mode quick        begin a run log (docs/report/run.json)
//	kvfleet-report step -name bench -- CMD  run one tool and record it (-skip WHY: record why not)
//	kvfleet-report e2e -in events.json      the e2e suite's `go test -json` events into e2e.json
//	kvfleet-report reference [-quick]       measure etcd and Redis on loopback into reference.json
//	kvfleet-report machine                  the machine and the fleet's images into machine.json
//	kvfleet-report finish                   close the run log
//	kvfleet-report render                   charts and docs/report.md from the JSON files
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/hostinfo"
	"github.com/kvfleet/kvfleet/internal/refsystem"
	"github.com/kvfleet/kvfleet/internal/report"
)

// exitError carries a wrapped tool's exit code out of run.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var code exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &code):
		os.Exit(int(code))
	default:
		fmt.Fprintln(os.Stderr, "kvfleet-report:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: kvfleet-report start|step|e2e|reference|machine|finish|render [flags] (see the command's doc)")
	}
	fs := flag.NewFlagSet("kvfleet-report "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "docs/report", "the report's JSON files")
	switch args[0] {
	case "start":
		mode := fs.String("mode", "full", "quick or full")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return report.StartRun(report.RunLogPath(*dir), *mode)
	case "finish":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return report.FinishRun(report.RunLogPath(*dir))
	case "step":
		name := fs.String("name", "", "the step's name (bench, chaos, autoscale, e2e, reference, machine)")
		skip := fs.String("skip", "", "record that the step did not run, and why")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		code, err := report.RunStep(ctx, report.RunLogPath(*dir), *name, *skip, fs.Args())
		if err != nil {
			return err
		}
		if code != 0 {
			return exitError(code)
		}
		return nil
	case "e2e":
		in := fs.String("in", "", "the events of `go test -json` (default stdin)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return e2e(*in, filepath.Join(*dir, report.FileE2E))
	case "reference":
		quick := fs.Bool("quick", false, "shorter phases")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		return refsystem.WriteJSON(filepath.Join(*dir, report.FileReference), refsystem.Run(ctx, refsystem.Defaults(*quick), log))
	case "machine":
		project := fs.String("project", envOr("KVFLEET_PROJECT", "kvfleet"), "Compose project of the fleet")
		envFile := fs.String("env-file", envOr("KVFLEET_ENV_FILE", ".env"), "the fleet's env file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		m, err := hostinfo.Describe(ctx, *project, *envFile, "deploy/images.env")
		if m == nil {
			return err
		}
		return errors.Join(err, hostinfo.WriteJSON(filepath.Join(*dir, report.FileMachine), m))
	case "render":
		doc := fs.String("out", "docs/report.md", "the Markdown report")
		readme := fs.String("readme", "README.md", "README whose headline block is updated (\"\": none)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		_, err := report.Generate(report.Options{Dir: *dir, Document: *doc, ImgDir: filepath.Join(*dir, "img"), README: *readme, Now: time.Now()})
		if err == nil {
			fmt.Println("report:", *doc)
		}
		return err
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// e2e turns `go test -json` events into e2e.json.
func e2e(in, out string) error {
	f := os.Stdin
	if in != "" {
		var err error
		if f, err = os.Open(in); err != nil {
			return err
		}
		defer f.Close()
	}
	res, err := report.ParseTestEvents(f)
	if err != nil {
		return err
	}
	res.BaseURL, res.Project = os.Getenv("KVFLEET_E2E_URL"), os.Getenv("KVFLEET_E2E_PROJECT")
	return report.WriteJSON(out, res)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
