package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	r := MustRedis(t)
	t.Logf("redis set (master, replica, 3 sentinels) ready in %s", time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()

	for addr, wantRole := range map[string]string{r.MasterAddr: "master", r.ReplicaAddr: "slave"} {
		c, err := dialRESP(ctx, addr, r.Password)
		if err != nil {
			t.Fatalf("AUTH to %s: %v", addr, err)
		}
		if v, err := c.do(ctx, "PING"); err != nil || v != "PONG" {
			t.Errorf("PING %s = %v, %v; want PONG", addr, v, err)
		}
		v, err := c.do(ctx, "ROLE")
		if role, _ := v.([]any); err != nil || len(role) == 0 || role[0] != wantRole {
			t.Errorf("ROLE %s = %v, %v; want %s", addr, v, err, wantRole)
		}
		c.Close()
	}

	// Each side has its own password: mixing them up must fail.
	if _, err := dialRESP(ctx, r.MasterAddr, r.SentinelPassword); err == nil {
		t.Error("master accepted the sentinel password")
	}
	if _, err := redisDo(ctx, r.MasterAddr, "", "PING"); err == nil {
		t.Error("master answered without AUTH")
	}
	if len(r.SentinelAddrs) != 3 {
		t.Fatalf("SentinelAddrs = %v, want 3", r.SentinelAddrs)
	}
	for _, s := range r.SentinelAddrs {
		if v, err := redisDo(ctx, s, r.SentinelPassword, "PING"); err != nil || v != "PONG" {
			t.Errorf("PING sentinel %s = %v, %v", s, v, err)
		}
		if _, err := dialRESP(ctx, s, r.Password); err == nil {
			t.Errorf("sentinel %s accepted the data password", s)
		}
	}

	// A write reaches the replica: it is really replicating.
	c, err := dialRESP(ctx, r.MasterAddr, r.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.do(ctx, "SET", "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.do(ctx, "WAIT", "1", "5000"); err != nil || v != int64(1) {
		t.Fatalf("WAIT 1 = %v, %v; want 1", v, err)
	}
	c.Close()
	if v, err := redisDo(ctx, r.ReplicaAddr, r.Password, "GET", "k"); err != nil || v != "v1" {
		t.Errorf("GET k on replica = %v, %v; want v1", v, err)
	}

	if got, err := r.CurrentMaster(ctx); err != nil || got != r.MasterAddr {
		t.Fatalf("CurrentMaster = %q, %v; want %q", got, err, r.MasterAddr)
	}
	begin = time.Now()
	if err := r.KillMaster(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", r.MasterAddr, time.Second); err == nil {
		t.Error("killed master still accepts connections")
	}
	got, err := r.WaitForFailover(ctx, r.MasterAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover took %s", time.Since(begin).Round(time.Millisecond))
	if got != r.ReplicaAddr {
		t.Fatalf("new master = %q, want the replica %q", got, r.ReplicaAddr)
	}
	if cur, err := r.CurrentMaster(ctx); err != nil || cur != r.ReplicaAddr {
		t.Errorf("CurrentMaster after failover = %q, %v; want %q", cur, err, r.ReplicaAddr)
	}
	// The promoted replica kept the data and takes writes.
	if v, err := redisDo(ctx, got, r.Password, "GET", "k"); err != nil || v != "v1" {
		t.Errorf("GET k on new master = %v, %v; want v1", v, err)
	}
	if v, err := redisDo(ctx, got, r.Password, "SET", "k", "v2"); err != nil || v != "OK" {
		t.Errorf("SET on new master = %v, %v; want OK", v, err)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range append([]string{r.ReplicaAddr}, r.SentinelAddrs...) {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	p := MustPostgres(t)
	t.Logf("postgres ready in %s", time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()

	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	if u.Scheme != "postgres" || u.Hostname() != "127.0.0.1" || u.Query().Get("sslmode") != "disable" || pass == "" {
		t.Fatalf("URL %q: want postgres://user:pass@127.0.0.1:port/db?sslmode=disable", p.URL)
	}
	db := strings.TrimPrefix(u.Path, "/")

	checkUp := func(t *testing.T) {
		t.Helper()
		if got := pgAuthRequest(t, u.Host, u.User.Username(), db); got != pgAuthSASL {
			t.Errorf("authentication request %d over TCP, want %d (SCRAM): the user must need its password", got, pgAuthSASL)
		}
		isready, err := findBinary("pg_isready")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, isready, "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(), "-d", db, "-t", "5").CombinedOutput()
		if err != nil {
			t.Errorf("pg_isready: %v: %s", err, out)
		}
	}
	checkUp(t)

	// Over the trusted socket a missing database is a final error, not
	// "starting up", so a broken setup fails fast instead of timing out.
	if err := pgReady(ctx, "unix", p.socketPath(), u.User.Username(), "no_such_db"); err == nil || errors.Is(err, errNotReady) {
		t.Errorf("pgReady for a missing database = %v, want a final error", err)
	}
	if err := pgReady(ctx, "unix", p.socketPath(), u.User.Username(), db); err != nil {
		t.Errorf("pgReady over the socket: %v", err)
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Fatal("postgres still accepts connections after Stop")
	}
	begin = time.Now()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres restart ready in %s", time.Since(begin).Round(time.Millisecond))
	if p.URL != u.String() {
		t.Errorf("URL changed across restart: %q, was %q", p.URL, u)
	}
	checkUp(t)
	if err := p.Start(ctx); err == nil {
		t.Error("Start on a running server succeeded")
	}
}

func TestRabbitMQ(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	r := MustRabbitMQ(t)
	t.Logf("rabbitmq ready in %s", time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()

	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	if u.Scheme != "amqp" || u.Hostname() != "127.0.0.1" || u.User.Username() == "guest" || pass == "" {
		t.Fatalf("URL %q: want amqp://user:pass@127.0.0.1:port/ with a non-guest user", r.URL)
	}

	checkUp := func(t *testing.T) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "AMQP\x00\x00\x09\x01"); err != nil {
			t.Fatal(err)
		}
		if err := readConnectionStart(bufio.NewReader(conn)); err != nil {
			t.Fatal(err)
		}
		out, err := r.Ctl(ctx, "list_users", "--quiet")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, u.User.Username()) || strings.Contains(out, "guest") {
			t.Errorf("list_users = %q, want %s and no guest", out, u.User.Username())
		}
	}
	checkUp(t)

	begin = time.Now()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rabbitmq stop took %s", time.Since(begin).Round(time.Millisecond))
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Fatal("rabbitmq still accepts connections after Stop")
	}
	if _, err := r.Ctl(ctx, "status"); err == nil {
		t.Error("rabbitmqctl status succeeded on a stopped node")
	}
	begin = time.Now()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("rabbitmq restart ready in %s", time.Since(begin).Round(time.Millisecond))
	checkUp(t)

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Error("rabbitmq still accepts connections after Close")
	}
}

const pgAuthSASL = 10

// pgAuthRequest sends a startup message and returns the authentication
// method the server asks for.
func pgAuthRequest(t *testing.T, addr, user, db string) int32 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var body bytes.Buffer
	_ = binary.Write(&body, binary.BigEndian, int32(3<<16))
	for _, s := range []string{"user", user, "database", db, ""} {
		body.WriteString(s + "\x00")
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(body.Len()+4))
	if _, err := conn.Write(append(msg, body.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	var reply [9]byte // 'R', length, auth type
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		t.Fatal(err)
	}
	if reply[0] != 'R' {
		t.Fatalf("startup reply %q, want R", reply[0])
	}
	return int32(binary.BigEndian.Uint32(reply[5:]))
}

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

func TestReadRESP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"+PONG\r\n", "PONG"},
		{"-ERR wrong\r\n", respError("ERR wrong")},
		{":42\r\n", int64(42)},
		{"$5\r\nhe\r\no\r\n", "he\r\no"},
		{"$-1\r\n", nil},
		{"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n", []any{"127.0.0.1", "6379"}},
		{"*3\r\n$6\r\nmaster\r\n:7\r\n*0\r\n", []any{"master", int64(7), []any{}}},
	} {
		got, err := readRESP(bufio.NewReader(strings.NewReader(tc.in)))
		if err != nil {
			t.Errorf("readRESP(%q): %v", tc.in, err)
			continue
		}
		if !equalRESP(got, tc.want) {
			t.Errorf("readRESP(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{"", "?x\r\n", "$3\r\nab", "*x\r\n"} {
		if _, err := readRESP(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readRESP(%q) succeeded, want an error", in)
		}
	}
}

func equalRESP(a, b any) bool {
	aa, aok := a.([]any)
	ba, bok := b.([]any)
	if aok != bok {
		return false
	}
	if !aok {
		return a == b
	}
	if len(aa) != len(ba) {
		return false
	}
	for i := range aa {
		if !equalRESP(aa[i], ba[i]) {
			return false
		}
	}
	return true
}

func TestReadConnectionStart(t *testing.T) {
	frame := func(typ byte, class, method uint16, end byte) []byte {
		payload := binary.BigEndian.AppendUint16(nil, class)
		payload = binary.BigEndian.AppendUint16(payload, method)
		payload = append(payload, 0, 9) // version-major, version-minor
		b := []byte{typ, 0, 0}
		b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
		return append(append(b, payload...), end)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"connection.start", frame(1, 10, 10, 0xCE), true},
		{"other method", frame(1, 10, 30, 0xCE), false},
		{"heartbeat frame", frame(8, 10, 10, 0xCE), false},
		{"bad frame end", frame(1, 10, 10, 0x00), false},
		{"protocol mismatch", []byte("AMQP\x00\x00\x09\x01"), false},
		{"truncated", []byte{1, 0}, false},
	} {
		err := readConnectionStart(bytes.NewReader(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestPGErrorFields(t *testing.T) {
	in := []byte("SFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00")
	got := pgErrorFields(in)
	if got['C'] != "57P03" || got['M'] != "the database system is starting up" || got['S'] != "FATAL" {
		t.Errorf("pgErrorFields = %q", got)
	}
}

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

// A socket path longer than Linux allows must not stop PostgreSQL from
// starting in a deep test directory.
func TestPostgresLongDir(t *testing.T) {
	Require(t, postgresBinaries...)
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	p, err := StartPostgres(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if !p.ownSocketDir || len(p.socketPath()) > maxSocketPath {
		t.Errorf("socket path %q (%d bytes): want a short directory of our own", p.socketPath(), len(p.socketPath()))
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := pgAuthRequest(t, u.Host, u.User.Username(), strings.TrimPrefix(u.Path, "/")); got != pgAuthSASL {
		t.Errorf("authentication request %d, want %d", got, pgAuthSASL)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.socketDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir %s left behind after Close: %v", p.socketDir, err)
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
