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
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// postgresBinaries are what StartPostgres needs.
var postgresBinaries = []string{"initdb", "postgres"}

const (
	postgresUser     = "kvtest"
	postgresDatabase = "kvtest"
	// postgresStopGrace is how long a fast shutdown may take before the
	// postmaster is killed; with fsync=off it takes well under a second.
	postgresStopGrace = 30 * time.Second
	// sqlStateCannotConnectNow is what the server answers while it starts
	// up or shuts down: retry. Any other error at startup is final.
	sqlStateCannotConnectNow = "57P03"
	// pgAuthOK is the AuthenticationOk code: no password needed.
	pgAuthOK = 0
	// maxSocketPath is the longest unix socket path Linux accepts
	// (sun_path is 108 bytes with the terminating zero).
	maxSocketPath = 107
)

// Postgres is a PostgreSQL server on loopback with one password-protected
// user owning one database.
type Postgres struct {
	// URL is postgres://user:pass@127.0.0.1:port/db?sslmode=disable.
	URL string

	binDir    string
	dir       string
	dataDir   string
	socketDir string
	// ownSocketDir is set when socketDir is not dir but a directory of
	// our own, which Close removes.
	ownSocketDir bool
	logPath      string
	port         int
	cred         *syscall.Credential // nil unless we are root
	env          []string

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
	initdb, err := findBinary("initdb")
	if err != nil {
		return nil, err
	}
	binDir := filepath.Dir(initdb)
	// initdb and postgres must be the same version.
	if !isExecutable(filepath.Join(binDir, "postgres")) {
		return nil, fmt.Errorf("testserver: no postgres binary next to %s; %s", initdb, installHint)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testserver: postgres dir: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("testserver: postgres dir: %w", err)
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
	if err := p.makeSocketDir(); err != nil {
		return nil, err
	}
	if err := p.initCluster(ctx, password); err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// makeSocketDir picks the directory for the server's unix socket: dir,
// unless that makes the socket path longer than Linux allows (a long test
// name, a long TMPDIR), in which case a short directory of our own under
// /tmp.
func (p *Postgres) makeSocketDir() error {
	p.socketDir = p.dir
	if len(p.socketPath()) <= maxSocketPath {
		return nil
	}
	d, err := os.MkdirTemp("/tmp", "kvtpg-")
	if err != nil {
		return fmt.Errorf("testserver: postgres socket dir: %w", err)
	}
	p.socketDir, p.ownSocketDir = d, true
	if p.cred != nil {
		if err := os.Chown(d, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("testserver: postgres socket dir: %w", err)
		}
	}
	return nil
}

// socketPath is where the server's unix socket is.
func (p *Postgres) socketPath() string {
	return filepath.Join(p.socketDir, ".s.PGSQL."+strconv.Itoa(p.port))
}

// initCluster runs initdb and creates the database in single-user mode,
// which needs no running server and no client.
func (p *Postgres) initCluster(ctx context.Context, password string) error {
	pwFile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("testserver: postgres password file: %w", err)
	}
	defer os.Remove(pwFile)
	if p.cred != nil {
		if err := os.Chown(pwFile, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("testserver: postgres password file: %w", err)
		}
	}
	// Local (socket) connections are trusted: the socket lives in dir,
	// which only the server's user can enter. TCP needs the password.
	err := run(ctx, p.spec("initdb", "initdb",
		"-D", p.dataDir,
		"-U", postgresUser,
		"--pwfile="+pwFile,
		"--auth-local=trust",
		"--auth-host=scram-sha-256",
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
	// across a machine crash is irrelevant to a test and costs time.
	spec := p.spec("postgres", "postgres",
		"-D", p.dataDir,
		"-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+p.socketDir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	)
	// TCP is what clients use; the trusted unix socket lets us also check
	// that the user and the database exist.
	return p.server.start(ctx, "postgres on "+loopback(p.port), spec, func(ctx context.Context) error {
		if err := pgReady(ctx, "tcp", loopback(p.port), postgresUser, postgresDatabase); err != nil {
			return err
		}
		return pgReady(ctx, "unix", p.socketPath(), postgresUser, postgresDatabase)
	})
}

// Stop shuts the server down fast (SIGINT to the postmaster: active
// transactions are rolled back, data is kept) and waits until it has
// exited and its port is free.
func (p *Postgres) Stop() error {
	return p.server.stop(syscall.SIGINT, postgresStopGrace)
}

// Close stops the server if it is running.
func (p *Postgres) Close() error {
	err := p.Stop()
	if p.ownSocketDir {
		if rerr := os.RemoveAll(p.socketDir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("testserver: remove postgres socket dir: %w", rerr))
		}
	}
	return err
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
		return nil, fmt.Errorf("testserver: running as root needs the postgres system user to run the server as: %w; %s", err, installHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testserver: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testserver: postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeReachable gives dir to cred's user and makes sure that user can
// traverse every ancestor of dir. t.TempDir's top directory is created 0700,
// so it needs o+x; we change only directories that we own below the
// temporary directory, never system ones.
func makeReachable(dir string, cred *syscall.Credential) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("testserver: postgres dir: %w", err)
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
			return fmt.Errorf("testserver: postgres dir: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("testserver: postgres dir: cannot read owner of %s", a)
		}
		mode := fi.Mode().Perm()
		reachable := mode&0o001 != 0 ||
			(st.Uid == cred.Uid && mode&0o100 != 0) ||
			(st.Gid == cred.Gid && mode&0o010 != 0)
		if !reachable {
			underTemp := slices.ContainsFunc(roots, func(r string) bool { return strings.HasPrefix(a, r) })
			if int(st.Uid) != os.Geteuid() || !underTemp {
				return fmt.Errorf("testserver: the postgres user (uid %d) cannot traverse %s to reach %s; use a directory under %s", cred.Uid, a, dir, os.TempDir())
			}
			if err := os.Chmod(a, mode|0o001); err != nil {
				return fmt.Errorf("testserver: make %s traversable for postgres: %w", a, err)
			}
		}
		if a == filepath.Dir(a) {
			break
		}
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("testserver: give %s to postgres: %w", dir, err)
	}
	return nil
}

// pgReady sends a startup message to the server at addr and reads its
// replies until it can tell whether the server serves user and db. A
// request for a password means it does (over TCP the password is asked for
// before the database is looked up); a trusted connection (the unix socket)
// goes on to ReadyForQuery, or to an error such as a missing database. It
// speaks just enough of the protocol to tell "starting up" (retry) from a
// real error (fail now).
func pgReady(ctx context.Context, network, addr, user, db string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return notReady(err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultIOTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return notReady(err)
	}

	var body bytes.Buffer
	_ = binary.Write(&body, binary.BigEndian, int32(3<<16)) // protocol 3.0
	for _, s := range []string{"user", user, "database", db, ""} {
		body.WriteString(s)
		body.WriteByte(0)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(body.Len()+4))
	msg = append(msg, body.Bytes()...)
	if _, err := conn.Write(msg); err != nil {
		return notReady(err)
	}

	r := bufio.NewReader(conn)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return notReady(err)
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<20 {
			return fmt.Errorf("postgres: bad message length %d", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return notReady(err)
		}
		switch hdr[0] {
		case 'R':
			if n < 4 {
				return fmt.Errorf("postgres: short authentication message")
			}
			if binary.BigEndian.Uint32(payload) != pgAuthOK {
				return nil
			}
		case 'Z':
			return nil
		case 'E':
			fields := pgErrorFields(payload)
			err := fmt.Errorf("postgres: %s (SQLSTATE %s)", fields['M'], fields['C'])
			if fields['C'] == sqlStateCannotConnectNow {
				return notReady(err)
			}
			return err
		case 'S', 'K', 'N':
			// Parameter status, backend key, notice: read on.
		default:
			return fmt.Errorf("postgres: unexpected message %q at startup", hdr[0])
		}
	}
}

// pgErrorFields decodes the body of an ErrorResponse: (code byte, string)
// pairs, ended by a zero byte.
func pgErrorFields(b []byte) map[byte]string {
	fields := map[byte]string{}
	for len(b) > 1 {
		code := b[0]
		end := bytes.IndexByte(b[1:], 0)
		if end < 0 {
			break
		}
		fields[code] = string(b[1 : 1+end])
		b = b[2+end:]
	}
	return fields
}
