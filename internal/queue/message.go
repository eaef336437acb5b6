package queue

import "github.com/kvfleet/kvfleet/internal/kv"

// Settler settles deliveries on the broker channel they came from, by
// delivery tag. amqp091's channel acknowledger is one; tests record calls.
type Settler interface {
	Ack(tag uint64, multiple bool) error
	Reject(tag uint64, requeue bool) error
}

// Message is one delivery of the write queue, decoded, with the means to
// settle it. Messages of one channel come in delivery order. A message is
// settled whole: its writes are acknowledged or dead-lettered together.
type Message struct {
	// Writes are the decoded writes, in the order the publisher grouped
	// them (one or more); none when Err is set.
	Writes []kv.Write
	// Err says why the body could not be decoded or validated (it wraps
	// ErrUndecodable). Such a message can only be dead-lettered.
	Err error
	// ID is the message id (the write's version), for logs.
	ID string
	// Size is the body's length in bytes, which bounds batches.
	Size int

	tag     uint64
	settler Settler
}

// NewMessage decodes body (see DecodeBatch) into a Message whose settlement
// goes to settler under delivery tag tag.
func NewMessage(body []byte, id string, tag uint64, settler Settler, limits kv.Limits) Message {
	ws, err := DecodeBatch(body, limits)
	return Message{Writes: ws, Err: err, ID: id, Size: len(body), tag: tag, settler: settler}
}

// AckThrough acknowledges m and every earlier message of its channel that is
// still unsettled: one frame settles a whole batch. The caller must have
// settled every earlier message it does not want acknowledged.
func (m Message) AckThrough() error { return m.settler.Ack(m.tag, true) }

// DeadLetter rejects m without requeueing it; the queue's dead-letter
// exchange receives it.
func (m Message) DeadLetter() error { return m.settler.Reject(m.tag, false) }
