// Package queue carries writes from the API to the consumers through
// RabbitMQ: the message envelope, the queue topology, a publisher that
// answers only once the broker has confirmed a write, and a subscriber;
// both recover from a lost connection by themselves.
package queue

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Topology names the queues and sets their durability. The API and the
// consumers both declare it, with identical arguments (RabbitMQ refuses a
// redeclaration that differs), so either may start first.
type Topology struct {
	// Queue is the durable quorum queue of writes.
	Queue string
	// DeadLetterExchange and DeadLetterQueue receive the messages that
	// cannot be applied.
	DeadLetterExchange string
	DeadLetterQueue    string
	// DeliveryLimit is how many times the broker delivers a message before
	// it dead-letters it: a safety net for a message that makes consumers
	// crash. A consumer rejects an undecodable message at once.
	DeliveryLimit int
}

// Declare creates the exchanges and queues if they do not exist.
func (t Topology) Declare(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(t.DeadLetterExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("queue: declare exchange %s: %w", t.DeadLetterExchange, err)
	}
	quorum := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	if _, err := ch.QueueDeclare(t.DeadLetterQueue, true, false, false, false, quorum); err != nil {
		return fmt.Errorf("queue: declare queue %s: %w", t.DeadLetterQueue, err)
	}
	if err := ch.QueueBind(t.DeadLetterQueue, "", t.DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("queue: bind %s: %w", t.DeadLetterQueue, err)
	}
	args := amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-delivery-limit":          int64(t.DeliveryLimit),
		"x-dead-letter-exchange":    t.DeadLetterExchange,
		"x-dead-letter-routing-key": t.DeadLetterQueue,
	}
	if _, err := ch.QueueDeclare(t.Queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("queue: declare queue %s: %w", t.Queue, err)
	}
	return nil
}
