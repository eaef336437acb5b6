package localserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	postgresUser     = "kvtest"
	postgresDatabase = "kvtest"
	// postgresStopGrace is how long a fast shutdown may take before the
	// postmaster is killed; with fsync=off it takes well under a second.
	postgresStopGrace = 30 * time.Second
	// sqlStateCannotConnectNow is what the server answers while it starts
	// up or shuts down: retry. Any other error at startup is final.
	sqlStateCannotConnectNow = "57P03"
)

// Postgres is a PostgreSQL server on loopback with one password-protected
// user owning one database.
type Postgres struct {
	// URL is postgres://user:pass@127.0.0.1:port/db?sslmode=disable.
	URL string

	binDir  string
	dir     string
	dataDir string
	logPath string
	port    int
	cred    *syscall.Credential // nil unless we are root
	env     []string

	server restartable
}

// StartPostgres creates a cluster in dir with initdb and starts it on a
// free loopback port, without fsync, and waits until it accepts
// connections. PostgreSQL refuses to run as root, so as root the cluster
// belongs to, and the server runs as, the postgres system user; dir is then
// chowned to it and its ancestors under the temporary directory are made
// traversable (o+x) for it.
func StartPostgres(ctx context.Context, dir string) (_ *Postgres, err error) {
	ctx, cancel := context.WithTimeout(ctx, postgresStartTimeout)
	defer cancel()
	initdb, err := FindBinary("initdb")
	if err != nil {
		return nil, err
	}
	binDir := filepath.Dir(initdb)
	// initdb and postgres must be the same version.
	if !isExecutable(filepath.Join(binDir, "postgres")) {
		return nil, fmt.Errorf("localserver: postgres next to %s: %w; %s", initdb, ErrNotInstalled, InstallHint)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localserver: postgres dir: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("localserver: postgres dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	password := randomHex(16)
	p := &Postgres{
		URL: (&url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(postgresUser, password),
			Host:     loopback(port),
			Path:     "/" + postgresDatabase,
			RawQuery: "sslmode=disable",
		}).String(),
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
		port:    port,
		// Drop the developer's PG* variables so that none of them (PGDATA,
		// PGPORT, PGOPTIONS) can redirect our tools.
		env: append(baseEnv("PG", "LC_", "LANG="), "LC_ALL=C", "HOME="+dir),
	}
	if os.Geteuid() == 0 {
		if p.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
		if err := makeReachable(dir, p.cred); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if err := p.initCluster(ctx, password); err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// initCluster runs initdb and creates the database in single-user mode,
// which needs no running server and no client.
func (p *Postgres) initCluster(ctx context.Context, password string) error {
	pwFile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("localserver: postgres password file: %w", err)
	}
	defer os.Remove(pwFile)
	if p.cred != nil {
		if err := os.Chown(pwFile, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("localserver: postgres password file: %w", err)
		}
	}
	// Every connection needs the password; the server has no unix socket
	// anyway (see Start).
	err := run(ctx, p.spec("initdb", "initdb",
		"-D", p.dataDir,
		"-U", postgresUser,
		"--pwfile="+pwFile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	))
	if err != nil {
		return err
	}
	create := p.spec("postgres single-user", "postgres", "--single", "-D", p.dataDir, "-F", "postgres")
	create.stdin = strings.NewReader(fmt.Sprintf("CREATE DATABASE %s OWNER %s;\n", postgresDatabase, postgresUser))
	return run(ctx, create)
}

// Start starts the server on its port and data directory and waits until
// it accepts connections. It is how a test brings the database back after
// Stop.
func (p *Postgres) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, postgresStartTimeout)
	defer cancel()
	// fsync, synchronous_commit and full_page_writes off: durability
	// across a machine crash is irrelevant to a throwaway server and costs
	// time.
	spec := p.spec("postgres", "postgres",
		"-D", p.dataDir,
		"-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		// No unix socket: clients use TCP, and a socket path has a length
		// limit (107 bytes) that a deep temporary directory exceeds.
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	)
	// Ready means what clients need: the user, its password and the
	// database work over TCP.
	return p.server.start(ctx, "postgres on "+loopback(p.port), spec, func(ctx context.Context) error {
		return pgReady(ctx, p.URL)
	})
}

// Stop shuts the server down fast (SIGINT to the postmaster: active
// transactions are rolled back, data is kept) and waits until it has
// exited and its port is free.
func (p *Postgres) Stop() error {
	return p.server.stop(syscall.SIGINT, postgresStopGrace)
}

// Close stops the server if it is running. The data directory is the
// caller's to remove.
func (p *Postgres) Close() error {
	return p.Stop()
}

// spec describes a run of one of the PostgreSQL binaries as the cluster's
// owner.
func (p *Postgres) spec(name, bin string, args ...string) procSpec {
	return procSpec{
		name:    name,
		path:    filepath.Join(p.binDir, bin),
		args:    args,
		dir:     p.dir,
		env:     p.env,
		logPath: p.logPath,
		cred:    p.cred,
	}
}

// postgresCredential is the postgres system user that Debian's package
// creates.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("localserver: running as root needs the postgres system user to run the server as: %w; %s", err, InstallHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localserver: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localserver: postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeReachable gives dir to cred's user and makes sure that user can
// traverse every ancestor of dir. A temporary directory (t.TempDir's top
// one, os.MkdirTemp's) is created 0700, so it needs o+x; we change only
// directories that we own below the temporary directory, never system ones.
func makeReachable(dir string, cred *syscall.Credential) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("localserver: postgres dir: %w", err)
	}
	// t.TempDir lives under GOTMPDIR when that is set.
	var roots []string
	for _, r := range []string{os.TempDir(), os.Getenv("GOTMPDIR")} {
		if r == "" {
			continue
		}
		if rr, err := filepath.EvalSymlinks(r); err == nil {
			r = rr
		}
		roots = append(roots, r+string(filepath.Separator))
	}
	for a := filepath.Dir(real); ; a = filepath.Dir(a) {
		fi, err := os.Stat(a)
		if err != nil {
			return fmt.Errorf("localserver: postgres dir: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("localserver: postgres dir: cannot read owner of %s", a)
		}
		mode := fi.Mode().Perm()
		reachable := mode&0o001 != 0 ||
			(st.Uid == cred.Uid && mode&0o100 != 0) ||
			(st.Gid == cred.Gid && mode&0o010 != 0)
		if !reachable {
			underTemp := slices.ContainsFunc(roots, func(r string) bool { return strings.HasPrefix(a, r) })
			if int(st.Uid) != os.Geteuid() || !underTemp {
				return fmt.Errorf("localserver: the postgres user (uid %d) cannot traverse %s to reach %s; use a directory under %s", cred.Uid, a, dir, os.TempDir())
			}
			if err := os.Chmod(a, mode|0o001); err != nil {
				return fmt.Errorf("localserver: make %s traversable for postgres: %w", a, err)
			}
		}
		if a == filepath.Dir(a) {
			break
		}
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("localserver: give %s to postgres: %w", dir, err)
	}
	return nil
}

// pgReady connects to url with pgx, which authenticates and opens the
// database, so success means the server serves that user and database.
// "Starting up" (SQLSTATE 57P03) and a refused connection are retried; any
// other error from the server (a wrong password, a missing database) is
// final, so that a broken setup fails at once instead of timing out.
func pgReady(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != sqlStateCannotConnectNow {
			return err
		}
		return notReady(err)
	}
	return conn.Close(ctx)
}
