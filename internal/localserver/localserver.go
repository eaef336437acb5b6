package localserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvfleet/kvfleet/internal/freeport"
)

// Start budgets: a start is bounded by its ctx and by these, whichever ends
// first, so that a ctx without a deadline cannot make a start hang.
const (
	redisStartTimeout    = 60 * time.Second
	postgresStartTimeout = 90 * time.Second
	rabbitStartTimeout   = 90 * time.Second
)

// pollInterval is how often readiness checks run: short enough not to add
// noticeable latency to a start, long enough not to burn a CPU on 2 cores.
const pollInterval = 100 * time.Millisecond

// checkTimeout bounds one readiness check, so that one hung connection
// cannot use up the whole start budget.
const checkTimeout = 2 * time.Second

// InstallHint is what a developer or CI should do about a missing server
// binary.
const InstallHint = "run scripts/install-test-deps.sh"

// ErrNotInstalled is wrapped by the errors of FindBinary and of the Start
// functions when a server binary is missing, so that a caller can tell "not
// installed" from "failed to start".
var ErrNotInstalled = errors.New("not installed")

// FindBinary returns the path of the server binary name (for example
// "redis-server" or "initdb"), or an error wrapping ErrNotInstalled. It
// looks first where Debian keeps the ones that are not on PATH or whose PATH
// entry is a wrapper we must avoid: PostgreSQL's versioned bin directory,
// and RabbitMQ's real scripts (the /usr/sbin wrappers su to the rabbitmq
// user, which loses our HOME and so our private Erlang cookie).
func FindBinary(name string) (string, error) {
	var dirs []string
	switch name {
	case "rabbitmq-server", "rabbitmqctl":
		dirs = []string{"/usr/lib/rabbitmq/bin"}
	case "initdb", "postgres", "pg_ctl", "pg_isready":
		dirs = postgresBinDirs()
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// A non-root PATH often lacks the sbin directories.
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("localserver: %s: %w; %s", name, ErrNotInstalled, InstallHint)
}

// postgresBinDirs lists candidate PostgreSQL bin directories, preferred
// first: the version the project targets, what pg_config reports, then any
// installed version, newest first.
func postgresBinDirs() []string {
	dirs := []string{"/usr/lib/postgresql/15/bin"}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			dirs = append(dirs, d)
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(found, func(a, b string) int {
		return versionOf(b) - versionOf(a)
	})
	return append(dirs, found...)
}

// versionOf extracts the major version from /usr/lib/postgresql/<v>/bin.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// freePort returns one free loopback port (see package freeport for why
// not the kernel's ephemeral choice).
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports, err := freeport.Loopback(n)
	if err != nil {
		return nil, fmt.Errorf("localserver: %w", err)
	}
	return ports, nil
}

// randomHex returns n random bytes as lowercase hex: safe in node names,
// URLs and config files without quoting.
func randomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error on Linux.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// baseEnv is our environment without the variables given by prefix,
// so that a developer's own settings (a RABBITMQ_NODENAME, a PGDATA) cannot
// leak into an isolated server.
func baseEnv(dropPrefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		drop := false
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// errNotReady marks a readiness check that should be retried; any other
// error from a check ends the wait at once.
var errNotReady = errors.New("not ready")

// waitReady runs check every pollInterval until it succeeds, fails with an
// error that is not errNotReady, one of procs exits, or ctx ends. Each
// check gets a context of its own, bounded by checkTimeout. The error
// carries the end of the logs of procs, which callers limit to the
// processes the check is about.
func waitReady(ctx context.Context, what string, procs []*process, check func(context.Context) error) error {
	var last error
	for {
		for _, p := range procs {
			if p.exited() {
				return withLog(fmt.Errorf("localserver: waiting for %s: %w", what, p.exitError()), p.logPath)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNotReady) {
			return withLogs(fmt.Errorf("localserver: waiting for %s: %w", what, err), procs)
		}
		last = err
		select {
		case <-ctx.Done():
			return withLogs(fmt.Errorf("localserver: waiting for %s: %w (last check: %v)", what, ctx.Err(), last), procs)
		case <-time.After(pollInterval):
		}
	}
}

// withLogs is withLog for each of procs.
func withLogs(err error, procs []*process) error {
	for _, p := range procs {
		err = withLog(err, p.logPath)
	}
	return err
}

// notReady wraps err so that waitReady retries it.
func notReady(err error) error {
	return fmt.Errorf("%w: %w", errNotReady, err)
}
