package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

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
		url := d.URLs[(int(start)+i)%len(d.URLs)]
		conn, err := d.dialOne(url)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("node %d: %w", (int(start)+i)%len(d.URLs)+1, err))
	}
	return nil, fmt.Errorf("queue: dial: %w", errors.Join(errs...))
}

func (d *Dialer) dialOne(url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if d.Name != "" {
		props.SetClientConnectionName(d.Name)
	}
	// DefaultDial's deadline covers the TCP connect and the AMQP handshake.
	return amqp.DialConfig(url, amqp.Config{
		Heartbeat:  d.Heartbeat,
		Properties: props,
		Dial:       amqp.DefaultDial(d.Timeout),
	})
}
