package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Start budgets: a start is bounded by its ctx and by these, whichever ends
// first, so that a ctx without a deadline cannot make a test hang.
const (
	redisStartTimeout    = 60 * time.Second
	postgresStartTimeout = 90 * time.Second
	rabbitStartTimeout   = 90 * time.Second
)

// pollInterval is how often readiness checks run: short enough not to add
// noticeable latency to a start, long enough not to burn a CPU on 2 cores.
const pollInterval = 100 * time.Millisecond

// installHint is what a developer or CI should do about a missing binary.
const installHint = "run scripts/install-test-deps.sh"

// InCI reports whether CI=true, that is whether a missing server must fail
// the test instead of skipping it.
func InCI() bool {
	ok, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ok
}

// Require decides what an integration test does when it cannot run: with
// -short it skips; when a needed binary is missing it fails the test if
// CI=true, because CI must run every integration test, and otherwise skips
// with a message that names the binary and the script that installs it.
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("testserver: integration test skipped with -short")
	}
	var missing []string
	for _, b := range binaries {
		if _, err := findBinary(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("testserver: %s not found; %s", strings.Join(missing, ", "), installHint)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// MustRedis requires the Redis binaries, starts a RedisSet in a temporary
// directory, and closes it when the test ends.
func MustRedis(t testing.TB) *RedisSet {
	t.Helper()
	return must(t, redisBinaries, StartRedis)
}

// MustPostgres requires the PostgreSQL binaries, starts a server in a
// temporary directory, and closes it when the test ends.
func MustPostgres(t testing.TB) *Postgres {
	t.Helper()
	return must(t, postgresBinaries, StartPostgres)
}

// MustRabbitMQ requires the RabbitMQ binaries, starts a node in a temporary
// directory, and closes it when the test ends.
func MustRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	return must(t, rabbitBinaries, StartRabbitMQ)
}

// must is what the Must functions share. It calls t.Fatal, so it belongs on
// the test's own goroutine; start servers in parallel with the Start
// functions instead.
func must[S interface{ Close() error }](t testing.TB, binaries []string, start func(context.Context, string) (S, error)) S {
	t.Helper()
	Require(t, binaries...)
	s, err := start(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// findBinary resolves a server binary. It looks first where Debian keeps the
// ones that are not on PATH or whose PATH entry is a wrapper we must avoid:
// PostgreSQL's versioned bin directory, and RabbitMQ's real scripts (the
// /usr/sbin wrappers su to the rabbitmq user, which loses our HOME and so
// our private Erlang cookie).
func findBinary(name string) (string, error) {
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
	return "", fmt.Errorf("testserver: %s not found; %s", name, installHint)
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

// freePort asks the kernel for an unused loopback port. The port is free
// only until someone else takes it, but the kernel hands out ephemeral ports
// spread over a wide range, so parallel test packages rarely collide.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free ports. All listeners stay open until
// every port is known, so the kernel cannot hand out the same one twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testserver: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
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

// baseEnv is the test's environment without the variables given by prefix,
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
// check gets a bounded context of its own so that one hung connection
// cannot use up the whole budget. The error carries the end of the logs of
// procs, which callers limit to the processes the check is about.
func waitReady(ctx context.Context, what string, procs []*process, check func(context.Context) error) error {
	var last error
	for {
		for _, p := range procs {
			if p.exited() {
				return withLog(fmt.Errorf("testserver: waiting for %s: %w", what, p.exitError()), p.logPath)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNotReady) {
			return withLogs(fmt.Errorf("testserver: waiting for %s: %w", what, err), procs)
		}
		last = err
		select {
		case <-ctx.Done():
			return withLogs(fmt.Errorf("testserver: waiting for %s: %w (last check: %v)", what, ctx.Err(), last), procs)
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
