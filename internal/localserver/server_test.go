package localserver_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/kvfleet/kvfleet/internal/localserver"
	"github.com/kvfleet/kvfleet/internal/testserver"
)

func redisClient(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1, DialTimeout: 5 * time.Second})
}

func sentinelClient(addr, password string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1, DialTimeout: 5 * time.Second})
}

// refuses checks that nothing listens on addr any more.
func refuses(t *testing.T, addr, when string) {
	t.Helper()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections %s", addr, when)
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	r := testserver.MustRedis(t)
	t.Logf("redis set (master, replica, 3 sentinels) ready in %s", time.Since(begin).Round(time.Millisecond))
	ctx := t.Context()

	for addr, wantRole := range map[string]string{r.MasterAddr: "master", r.ReplicaAddr: "slave"} {
		c := redisClient(addr, r.Password)
		if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
			t.Errorf("PING %s = %v, %v; want PONG", addr, v, err)
		}
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != wantRole {
			t.Errorf("ROLE %s = %v, %v; want %s", addr, role, err, wantRole)
		}
		c.Close()
	}

	// Each side has its own password: mixing them up must fail.
	for _, tc := range []struct{ what, password string }{
		{"the sentinel password", r.SentinelPassword},
		{"no password", ""},
	} {
		c := redisClient(r.MasterAddr, tc.password)
		if err := c.Ping(ctx).Err(); err == nil {
			t.Errorf("master answered with %s", tc.what)
		}
		c.Close()
	}
	if len(r.SentinelAddrs) != 3 {
		t.Fatalf("SentinelAddrs = %v, want 3", r.SentinelAddrs)
	}
	for _, s := range r.SentinelAddrs {
		c := sentinelClient(s, r.SentinelPassword)
		if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
			t.Errorf("PING sentinel %s = %v, %v", s, v, err)
		}
		if m, err := c.Master(ctx, r.MasterName).Result(); err != nil || net.JoinHostPort(m["ip"], m["port"]) != r.MasterAddr {
			t.Errorf("SENTINEL MASTER on %s = %v, %v; want %s", s, m, err, r.MasterAddr)
		}
		c.Close()
		c = sentinelClient(s, r.Password)
		if err := c.Ping(ctx).Err(); err == nil {
			t.Errorf("sentinel %s accepted the data password", s)
		}
		c.Close()
	}

	// A write reaches the replica: it is really replicating.
	master := redisClient(r.MasterAddr, r.Password)
	if err := master.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %v, %v; want 1", n, err)
	}
	master.Close()
	replica := redisClient(r.ReplicaAddr, r.Password)
	if v, err := replica.Get(ctx, "k").Result(); err != nil || v != "v1" {
		t.Errorf("GET k on replica = %v, %v; want v1", v, err)
	}
	replica.Close()

	if got, err := r.CurrentMaster(ctx); err != nil || got != r.MasterAddr {
		t.Fatalf("CurrentMaster = %q, %v; want %q", got, err, r.MasterAddr)
	}
	begin = time.Now()
	if err := r.KillMaster(); err != nil {
		t.Fatal(err)
	}
	refuses(t, r.MasterAddr, "after KillMaster")
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
	promoted := redisClient(got, r.Password)
	defer promoted.Close()
	if v, err := promoted.Get(ctx, "k").Result(); err != nil || v != "v1" {
		t.Errorf("GET k on new master = %v, %v; want v1", v, err)
	}
	if err := promoted.Set(ctx, "k", "v2", 0).Err(); err != nil {
		t.Errorf("SET on new master: %v", err)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range append([]string{r.ReplicaAddr}, r.SentinelAddrs...) {
		refuses(t, addr, "after Close")
	}
}

// checkPostgres checks that the URL's user and database work with the
// password and not without it.
func checkPostgres(t *testing.T, ctx context.Context, rawURL string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	u, _ := url.Parse(rawURL)
	var user, db string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
		t.Fatal(err)
	}
	if user != u.User.Username() || db != strings.TrimPrefix(u.Path, "/") {
		t.Errorf("connected as %s to %s; want the URL's %s", user, db, u)
	}

	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "wrong")
	_, err = pgx.Connect(ctx, wrong.String())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("connect with a wrong password: %v; want SQLSTATE 28P01 (invalid_password)", err)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	p := testserver.MustPostgres(t)
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
	checkPostgres(t, ctx, p.URL)

	// A missing database is a final error, not "starting up", so that a
	// broken setup fails fast instead of timing out.
	missing := *u
	missing.Path = "/no_such_db"
	if err := localserver.PGReady(ctx, missing.String()); err == nil || errors.Is(err, localserver.ErrNotReady) {
		t.Errorf("pgReady for a missing database = %v, want a final error", err)
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	refuses(t, u.Host, "after Stop")
	if err := localserver.PGReady(ctx, p.URL); !errors.Is(err, localserver.ErrNotReady) {
		t.Errorf("pgReady on a stopped server = %v, want not ready (retry)", err)
	}
	begin = time.Now()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres restart ready in %s", time.Since(begin).Round(time.Millisecond))
	if p.URL != u.String() {
		t.Errorf("URL changed across restart: %q, was %q", p.URL, u)
	}
	checkPostgres(t, ctx, p.URL)
	if err := p.Start(ctx); err == nil {
		t.Error("Start on a running server succeeded")
	}
}

// A deep directory must not stop PostgreSQL from starting: a unix socket
// there would exceed Linux's path limit, so the server must not make one.
func TestPostgresDeepDir(t *testing.T) {
	testserver.Require(t, "initdb", "postgres")
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 90), strings.Repeat("e", 90))
	p, err := localserver.StartPostgres(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	checkPostgres(t, t.Context(), p.URL)
}

func TestRabbitMQ(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	r := testserver.MustRabbitMQ(t)
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
		conn, err := amqp.Dial(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		// The user may configure and write: it can declare and publish.
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q.Name, true, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Errorf("publish confirm = %v, %v; want an ack", ok, err)
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
	// Once only: RabbitMQ answers a failed login after a deliberate 3 s.
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "wrong")
	if c, err := amqp.Dial(wrong.String()); err == nil {
		c.Close()
		t.Error("a wrong password was accepted")
	}

	begin = time.Now()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rabbitmq stop took %s", time.Since(begin).Round(time.Millisecond))
	refuses(t, u.Host, "after Stop")
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
	refuses(t, u.Host, "after Close")
}
