package report

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// StartRun begins a run log at path: the mode and the start, no steps.
// Inputs older than this start are stale from then on.
func StartRun(path, mode string) error {
	return WriteJSON(path, &RunLog{Schema: RunSchema, Mode: mode, Started: time.Now().UTC().Truncate(time.Second)})
}

// FinishRun records the end of the run.
func FinishRun(path string) error {
	l, err := ReadRunLog(path)
	if err != nil || l == nil {
		return errors.Join(err, errors.New("report: no run log; start one with `kvfleet-report start`"))
	}
	l.Finished = time.Now().UTC().Truncate(time.Second)
	return WriteJSON(path, l)
}

// RunStep runs one tool (args) with its output passed through, records
// how long it took and how it ended in the run log at path, and returns
// its exit code. With skip set, it records that the step did not run,
// and why.
func RunStep(ctx context.Context, path, name, skip string, args []string) (int, error) {
	l, err := ReadRunLog(path)
	if err != nil {
		return 1, err
	}
	if l == nil {
		return 1, errors.New("report: no run log; start one with `kvfleet-report start`")
	}
	s := Step{Name: name, Command: strings.Join(args, " "), Started: time.Now().UTC(), Skipped: skip}
	if skip == "" {
		s.ExitCode = run(ctx, args)
		s.Seconds = time.Since(s.Started).Round(100 * time.Millisecond).Seconds()
	}
	l.Steps = append(l.Steps, s)
	return s.ExitCode, WriteJSON(path, l)
}

// run runs args and returns the exit code (127 when it could not start,
// 128+n for a signal).
func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		return 127
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Let the tool heal and clean up on an interrupt, as it would alone.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 2 * time.Minute
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if st, ok := exit.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal())
		}
		return exit.ExitCode()
	}
	return 127
}

// RunLogPath is the run log in the report's directory.
func RunLogPath(dir string) string { return filepath.Join(dir, FileRun) }
