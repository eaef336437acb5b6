package testserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kvfleet/kvfleet/internal/localserver"
)

// RedisSet is a Redis master, one replica and three sentinels monitoring
// them, all on loopback; see localserver.RedisSet.
type RedisSet = localserver.RedisSet

// Postgres is a PostgreSQL server on loopback; see localserver.Postgres.
type Postgres = localserver.Postgres

// RabbitMQ is a single RabbitMQ node on loopback; see localserver.RabbitMQ.
type RabbitMQ = localserver.RabbitMQ

// StartRedis is localserver.StartRedis. With the other Start functions it
// is for tests that start several servers in parallel: unlike the Must
// functions they may run on any goroutine, and the caller closes what they
// return.
func StartRedis(ctx context.Context, dir string) (*RedisSet, error) {
	return localserver.StartRedis(ctx, dir)
}

// StartPostgres is localserver.StartPostgres; see StartRedis.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	return localserver.StartPostgres(ctx, dir)
}

// StartRabbitMQ is localserver.StartRabbitMQ; see StartRedis.
func StartRabbitMQ(ctx context.Context, dir string) (*RabbitMQ, error) {
	return localserver.StartRabbitMQ(ctx, dir)
}

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
		if _, err := localserver.FindBinary(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		unavailable(t, fmt.Sprintf("testserver: %s not found; %s", strings.Join(missing, ", "), localserver.InstallHint))
	}
}

// MustRedis starts a RedisSet in a temporary directory, or skips or fails
// the test as Require does, and closes the set when the test ends.
func MustRedis(t testing.TB) *RedisSet {
	t.Helper()
	return must(t, localserver.StartRedis)
}

// MustPostgres starts a PostgreSQL server in a temporary directory, or skips
// or fails the test as Require does, and closes the server when the test
// ends.
func MustPostgres(t testing.TB) *Postgres {
	t.Helper()
	return must(t, localserver.StartPostgres)
}

// MustRabbitMQ starts a RabbitMQ node in a temporary directory, or skips or
// fails the test as Require does, and closes the node when the test ends.
func MustRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	return must(t, localserver.StartRabbitMQ)
}

// must is what the Must functions share. It calls t.Fatal, so it belongs on
// the test's own goroutine; start servers in parallel with the Start
// functions instead. The Start functions look for every binary they need
// before they start anything, so a missing one ends the test with nothing
// to clean up.
func must[S interface{ Close() error }](t testing.TB, start func(context.Context, string) (S, error)) S {
	t.Helper()
	Require(t)
	s, err := start(t.Context(), t.TempDir())
	if errors.Is(err, localserver.ErrNotInstalled) {
		unavailable(t, fmt.Sprint(err))
	}
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

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
