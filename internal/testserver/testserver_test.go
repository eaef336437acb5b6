package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/localserver"
)

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"true", true},
		{"1", true},
		{"false", false},
		{"", false},
		{"yes please", false},
	} {
		t.Setenv("CI", tc.value)
		if got := InCI(); got != tc.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", tc.value, got, tc.want)
		}
	}
}

// recordingTB stands in for a test to see whether Require skips or fails.
// Like the real thing, Skip and Fatal end the calling goroutine.
type recordingTB struct {
	testing.TB
	action string
	msg    string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skip(args ...any) { r.record("skip", args) }

func (r *recordingTB) Fatal(args ...any) { r.record("fatal", args) }

func (r *recordingTB) record(action string, args []any) {
	r.action, r.msg = action, fmt.Sprint(args...)
	runtime.Goexit()
}

func TestRequireMissingBinary(t *testing.T) {
	if testing.Short() {
		// Require skips before it looks at binaries; nothing to observe.
		t.Skip("Require always skips with -short")
	}
	for _, tc := range []struct {
		ci   string
		want string
	}{
		{"true", "fatal"},
		{"", "skip"},
	} {
		t.Setenv("CI", tc.ci)
		rec := &recordingTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Require(rec, "kvfleet-no-such-server")
		}()
		<-done
		if rec.action != tc.want {
			t.Errorf("CI=%q: Require did %q, want %q", tc.ci, rec.action, tc.want)
		}
		if !strings.Contains(rec.msg, "kvfleet-no-such-server") || !strings.Contains(rec.msg, "scripts/install-test-deps.sh") {
			t.Errorf("CI=%q: message %q must name the binary and the install script", tc.ci, rec.msg)
		}
	}
}

// closer stands in for a server.
type closer struct{}

func (closer) Close() error { return nil }

// A Start function that reports a missing binary skips the test, or fails it
// in CI, like Require; any other start error fails it everywhere.
func TestMustStartErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("must always skips with -short")
	}
	notInstalled := fmt.Errorf("localserver: kvfleet-no-such-server: %w", localserver.ErrNotInstalled)
	for _, tc := range []struct {
		ci   string
		err  error
		want string
	}{
		{"true", notInstalled, "fatal"},
		{"", notInstalled, "skip"},
		{"", errors.New("port in use"), "fatal"},
	} {
		t.Setenv("CI", tc.ci)
		rec := &recordingTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			must(rec, func(context.Context, string) (closer, error) { return closer{}, tc.err })
		}()
		<-done
		if rec.action != tc.want || !strings.Contains(rec.msg, tc.err.Error()) {
			t.Errorf("CI=%q, start error %q: must did %q with %q; want %q with the error", tc.ci, tc.err, rec.action, rec.msg, tc.want)
		}
	}
}

// The Must functions close their server when the test that asked for it
// ends, so that no server outlives its test.
func TestMustClosesWhenTestEnds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) []string // the addresses the server listens on
	}{
		{"redis", func(t testing.TB) []string {
			r := MustRedis(t)
			return append([]string{r.MasterAddr, r.ReplicaAddr}, r.SentinelAddrs...)
		}},
		{"postgres", func(t testing.TB) []string { return []string{host(t, MustPostgres(t).URL)} }},
		{"rabbitmq", func(t testing.TB) []string { return []string{host(t, MustRabbitMQ(t).URL)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var addrs []string
			// A subtest's cleanups have run when t.Run returns.
			started := t.Run("server", func(t *testing.T) {
				addrs = tc.start(t)
				for _, addr := range addrs {
					conn, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						t.Fatalf("%s does not accept connections: %v", addr, err)
					}
					conn.Close()
				}
			})
			if !started || len(addrs) == 0 {
				t.Skip("the server did not start")
			}
			for _, addr := range addrs {
				if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					conn.Close()
					t.Errorf("%s still accepts connections after its test ended", addr)
				}
			}
		})
	}
}

func host(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
