package localserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	rabbitUser = "kvtest"
	// rabbitStopGrace is how long a node may take to shut down cleanly on
	// SIGTERM before it is killed.
	rabbitStopGrace = 60 * time.Second
	// ctlWaitDelay bounds how long Ctl waits for rabbitmqctl's output
	// after it was killed because ctx ended.
	ctlWaitDelay = 5 * time.Second
)

// RabbitMQ is a single RabbitMQ node on loopback with one non-guest
// administrator user on the default vhost.
type RabbitMQ struct {
	// URL is amqp://user:pass@127.0.0.1:port/.
	URL string

	node      string
	dir       string
	port      int
	serverBin string
	ctlBin    string
	env       []string
	logPath   string

	server restartable
}

// StartRabbitMQ starts a RabbitMQ node of its own under dir and waits until
// it accepts AMQP connections. The node has a unique name, its own ports,
// data, logs, config and Erlang cookie (HOME is dir), and no plugins.
func StartRabbitMQ(ctx context.Context, dir string) (_ *RabbitMQ, err error) {
	ctx, cancel := context.WithTimeout(ctx, rabbitStartTimeout)
	defer cancel()
	serverBin, err := FindBinary("rabbitmq-server")
	if err != nil {
		return nil, err
	}
	ctlBin, err := FindBinary("rabbitmqctl")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localserver: rabbitmq dir: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("localserver: rabbitmq dir: %w", err)
	}
	if err := startEPMD(ctx, dir); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	password := randomHex(16)
	r := &RabbitMQ{
		URL: (&url.URL{
			Scheme: "amqp",
			User:   url.UserPassword(rabbitUser, password),
			Host:   loopback(ports[0]),
			Path:   "/",
		}).String(),
		node:      "kvt-" + randomHex(6) + "@localhost",
		dir:       dir,
		port:      ports[0],
		serverBin: serverBin,
		ctlBin:    ctlBin,
		logPath:   filepath.Join(dir, "rabbitmq.log"),
	}

	// default_user is created on the node's first boot only; it lives in
	// the node's database from then on, so restarts keep it.
	conf := fmt.Sprintf(`default_user = %s
default_pass = %s
default_vhost = /
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
`, rabbitUser, password)
	files := map[string]string{
		"rabbitmq.conf":   conf,
		"enabled_plugins": "[].\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("localserver: rabbitmq %s: %w", name, err)
		}
	}

	// Everything that the scripts would otherwise take from /etc/rabbitmq,
	// /var/lib/rabbitmq or the developer's environment points into dir.
	r.env = append(baseEnv("RABBITMQ_", "ERL_", "HOME=", "NOTIFY_SOCKET=", "RUNNING_UNDER_SYSTEMD="),
		"HOME="+dir, // the Erlang cookie is $HOME/.erlang.cookie
		"RABBITMQ_NODENAME="+r.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(ports[0]),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(ports[1]),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_LOGS=-", // to stdout, that is our log file
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		// rabbitmqctl listens for distribution on a fixed range
		// (35672-35682) by default, shared by every CLI call on the
		// machine; 0 lets the kernel pick a port.
		"RABBITMQ_CTL_DIST_PORT_MIN=0",
		"RABBITMQ_CTL_DIST_PORT_MAX=0",
		"ERL_CRASH_DUMP="+filepath.Join(dir, "erl_crash.dump"),
		// Without this the rabbitmq-server script stays in front of the
		// VM as a shell that forwards signals, so the process we wait for
		// would be the shell, and the VM could outlive it by a moment.
		// With it the script execs the VM: our child is the VM itself.
		"RUNNING_UNDER_SYSTEMD=true",
	)
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// startEPMD makes sure Erlang's port mapper runs. It is shared by every
// Erlang node on the machine and must outlive them all, so it is started as
// the daemon it is meant to be and never stopped; `epmd -daemon` exits at
// once when one already runs.
func startEPMD(ctx context.Context, dir string) error {
	bin, err := FindBinary("epmd")
	if err != nil {
		return err
	}
	return run(ctx, procSpec{
		name:    "epmd -daemon",
		path:    bin,
		args:    []string{"-daemon"},
		dir:     "/",
		env:     baseEnv("ERL_"),
		logPath: filepath.Join(dir, "epmd.log"),
	})
}

// Start starts the node (again: same name, ports and data) and waits until
// it accepts AMQP connections.
func (r *RabbitMQ) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, rabbitStartTimeout)
	defer cancel()
	spec := procSpec{
		name:    "rabbitmq-server " + r.node,
		path:    r.serverBin,
		dir:     r.dir,
		env:     r.env,
		logPath: r.logPath,
	}
	return r.server.start(ctx, "rabbitmq on "+loopback(r.port), spec, func(ctx context.Context) error {
		return amqpReady(ctx, r.URL)
	})
}

// Stop shuts the node down cleanly (SIGTERM, which the Erlang VM turns into
// an orderly stop) and waits until it has exited. Its data is kept.
func (r *RabbitMQ) Stop() error {
	return r.server.stop(syscall.SIGTERM, rabbitStopGrace)
}

// Close kills the node if it is running. Unlike Stop it does not wait for
// an orderly shutdown: the data is thrown away with the directory anyway.
func (r *RabbitMQ) Close() error {
	return r.server.kill()
}

// Ctl runs rabbitmqctl against this node (for example "list_queues") and
// returns its combined output.
func (r *RabbitMQ) Ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.ctlBin, append([]string{"-n", r.node}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = r.env
	// rabbitmqctl is a shell script around an Erlang VM: on cancellation
	// kill the whole group, not just the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = ctlWaitDelay
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("localserver: rabbitmqctl %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}

// amqpReady opens an AMQP connection to url with amqp091-go, as a client
// would (handshake, login, vhost), and closes it again. Every failure is
// retried until the start budget runs out: while the node boots, a
// connection is refused or reset, and the timeout error carries the last
// failure and the node's log if it never gets ready.
func amqpReady(ctx context.Context, url string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(checkTimeout)
	}
	var conn net.Conn
	c, err := amqp.DialConfig(url, amqp.Config{
		// The deadline covers the TCP connect and the handshake; amqp091
		// clears it once the connection is open.
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn = nc
			return nc, nc.SetDeadline(deadline)
		},
	})
	if err != nil {
		// A failed handshake leaves the socket open and amqp091's reader
		// goroutine blocked on it; closing the socket ends both.
		if conn != nil {
			_ = conn.Close()
		}
		return notReady(err)
	}
	return c.CloseDeadline(deadline)
}
