package refsystem

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvfleet/kvfleet/internal/freeport"
)

// server is a reference server process this package started: only it is
// ever signalled, by its own pid.
type server struct {
	name string
	cmd  *exec.Cmd
	dir  string
	log  *bytes.Buffer
	done chan error
}

// start runs bin with args in a new process group, its output kept for
// errors, with dir as its working directory.
func start(name, bin, dir string, args ...string) (*server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("refsystem: start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, dir: dir, log: &log, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	return s, nil
}

// waitReady polls ready until it succeeds, the process exits or timeout
// passes.
func (s *server) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return fmt.Errorf("refsystem: %s exited before it was ready (%v): %s", s.name, werr, tail(s.log.String()))
		case <-ctx.Done():
			return fmt.Errorf("refsystem: %s not ready within %v: %w", s.name, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpu is the CPU time the process has used so far.
func (s *server) cpu() time.Duration {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(s.cmd.Process.Pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after it are fixed.
	_, rest, ok := strings.Cut(string(raw), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	// USER_HZ is 100 on Linux whatever the kernel's HZ.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// stop ends the process: SIGTERM to its group, SIGKILL after grace.
func (s *server) stop(grace time.Duration) error {
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-s.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("refsystem: %s (pid %d) did not exit after SIGKILL", s.name, pgid)
	}
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// freePorts returns n distinct free loopback ports outside the kernel's
// ephemeral range.
func freePorts(n int) ([]int, error) {
	ports, err := freeport.Loopback(n)
	if err != nil {
		return nil, fmt.Errorf("refsystem: %w", err)
	}
	return ports, nil
}

// versionOf runs bin with arg and returns the first line that names a
// version.
func versionOf(ctx context.Context, bin string, arg string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, arg).Output()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(strings.ToLower(line), "version") || strings.Contains(line, "v=") {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
