package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Dialer connects to one of the nodes of a RabbitMQ cluster.
type Dialer struct {
	// URLs are the nodes' AMQP URLs; each connection attempt starts at the
	// next one, so that clients spread over the cluster and skip a dead node.
	URLs []string
	// Timeout bounds the TCP connection and the AMQP handshake.
	Timeout time.Duration
	// Heartbeat detects a dead broker on an idle connection.
	Heartbeat time.Duration
	// WriteTimeout bounds every write to the socket. A broker that stops
	// reading (a resource alarm raised before connection.blocked arrives)
	// would otherwise hold a publish in the write for as long as it likes,
	// past any context deadline: amqp091 checks the context only before it
	// writes. A write that times out breaks the connection, which fails
	// the publishes waiting on it and makes the supervisor dial again.
	WriteTimeout time.Duration
	// Name is shown in the management UI's connection list.
	Name string

	next atomic.Uint64
}

// Dial returns a connection to the first node that accepts one.
func (d *Dialer) Dial(ctx context.Context) (*amqp.Connection, error) {
	if len(d.URLs) == 0 {
		return nil, errors.New("queue: no broker URL configured")
	}
	start := d.next.Add(1)
	var errs []error
	for i := range d.URLs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		node := (int(start) + i) % len(d.URLs)
		conn, err := d.dialOne(d.URLs[node])
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("node %d: %w", node+1, err))
	}
	return nil, fmt.Errorf("queue: dial: %w", errors.Join(errs...))
}

func (d *Dialer) dialOne(url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if d.Name != "" {
		props.SetClientConnectionName(d.Name)
	}
	// DefaultDial's deadline covers the TCP connect and the AMQP handshake.
	dial := amqp.DefaultDial(d.Timeout)
	return amqp.DialConfig(url, amqp.Config{
		Heartbeat:  d.Heartbeat,
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			conn, err := dial(network, addr)
			if err != nil || d.WriteTimeout <= 0 {
				return conn, err
			}
			return writeDeadlineConn{Conn: conn, timeout: d.WriteTimeout}, nil
		},
	})
}

// writeDeadlineConn sets a fresh write deadline before every write.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c writeDeadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Session uses one established connection until it is lost or ctx ends,
// and returns why it stopped. It calls ready once its channels are set up,
// which tells the supervisor that the connection worked.
type Session func(ctx context.Context, conn *amqp.Connection, ready func()) error

// Connection supervises a process's one broker connection: it dials the
// cluster's nodes in turn, runs a Session on each connection it gets, and
// dials again with backoff when the session ends. The publisher and the
// subscriber both run on it, so the two share one reconnection policy and
// one kvfleet_broker_connected gauge.
type Connection struct {
	dialer    *Dialer
	log       *slog.Logger
	connected prometheus.Gauge
	// FirstPause and MaxPause bound the pause between connection attempts.
	firstPause, maxPause time.Duration
}

// NewConnection returns a Connection that dials through d.
func NewConnection(d *Dialer, log *slog.Logger, reg prometheus.Registerer) *Connection {
	return &Connection{
		dialer: d,
		log:    log,
		connected: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "kvfleet_broker_connected",
			Help: "1 while the process holds a working broker connection.",
		}),
		firstPause: 100 * time.Millisecond,
		maxPause:   10 * time.Second,
	}
}

// Supervise runs session on a connection after another until ctx ends. A
// session that got as far as ready starts the backoff again from its first
// pause, so a connection lost after working is redialled at once, while a
// broker that refuses every attempt is asked less and less often.
func (c *Connection) Supervise(ctx context.Context, session Session) {
	pause := &backoff.ExponentialBackOff{
		InitialInterval:     c.firstPause,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.maxPause,
	}
	pause.Reset()
	for ctx.Err() == nil {
		worked, err := c.once(ctx, session)
		if ctx.Err() != nil {
			return
		}
		if worked {
			pause.Reset()
		}
		wait := pause.NextBackOff()
		c.log.Warn("broker connection lost; reconnecting", "op", "queue.connect", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// once dials and runs one session; worked reports whether it became ready.
func (c *Connection) once(ctx context.Context, session Session) (worked bool, err error) {
	conn, err := c.dialer.Dial(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		c.connected.Set(0)
		_ = conn.Close()
	}()
	err = session(ctx, conn, func() {
		worked = true
		c.connected.Set(1)
		c.log.Info("broker connected", "op", "queue.connect", "node", conn.RemoteAddr().String())
	})
	return worked, err
}
