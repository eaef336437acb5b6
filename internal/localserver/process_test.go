package localserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTailFile(t *testing.T) {
	path := t.TempDir() + "/log"
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i%7) + "\n")
	}
	b.WriteString("last\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := tailFile(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[2] != "last" {
		t.Errorf("tailFile = %q, want 3 lines ending in last", got)
	}
}

// A server that dies during start-up must be reported with the end of its
// log, where the reason is.
func TestStartFailureCarriesLog(t *testing.T) {
	dir := t.TempDir()
	sh := procSpec{
		name:    "dying server",
		path:    "/bin/sh",
		args:    []string{"-c", "echo first line; echo the real reason; exit 3"},
		dir:     dir,
		logPath: filepath.Join(dir, "server.log"),
	}
	err := run(t.Context(), sh)
	if err == nil || !strings.Contains(err.Error(), "the real reason") {
		t.Errorf("run of a failing command: %v; want its log in the error", err)
	}

	p, err := startProcess(sh)
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(t.Context(), "dying server", []*process{p}, func(context.Context) error {
		return notReady(errors.New("not listening"))
	})
	if err == nil || !strings.Contains(err.Error(), "the real reason") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("waitReady on an exiting server: %v; want its exit status and log", err)
	}
	if err := p.kill(); err != nil {
		t.Errorf("kill after exit: %v", err)
	}
}

func TestWaitReadyHonoursContext(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess(procSpec{
		name:    "sleeper",
		path:    "/bin/sleep",
		args:    []string{"60"},
		dir:     dir,
		logPath: filepath.Join(dir, "sleep.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.kill() })
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = waitReady(ctx, "sleeper", []*process{p}, func(context.Context) error {
		return notReady(errors.New("never"))
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waitReady = %v, want a deadline error", err)
	}
	if err := p.kill(); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Error("process still running after kill")
	}
}

// A check that fails for good ends the wait at once instead of using up the
// budget.
func TestWaitReadyStopsOnFinalError(t *testing.T) {
	final := errors.New("wrong password")
	err := waitReady(t.Context(), "server", nil, func(context.Context) error { return final })
	if !errors.Is(err, final) {
		t.Errorf("waitReady = %v, want %v", err, final)
	}
}

func TestFindBinaryMissing(t *testing.T) {
	_, err := FindBinary("kvfleet-no-such-server")
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("FindBinary of a missing binary = %v, want ErrNotInstalled", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "kvfleet-no-such-server") || !strings.Contains(msg, InstallHint) {
		t.Errorf("message %q must name the binary and say how to install it", msg)
	}
}
