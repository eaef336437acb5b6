package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// ErrUndecodable marks a message that no consumer will ever be able to
// apply; it goes to the dead-letter queue instead of blocking the others.
var ErrUndecodable = errors.New("undecodable message")

// envelope is a message as it sits in the queue. It is JSON so that an
// operator can read a dead-lettered message in the management UI.
//
// A message carries one write, as the object's own fields, or several, as
// the list Writes of such objects. The publisher groups the writes of
// concurrent requests into one message when the broker is busy (see
// Publisher), because the broker's cost is per message: a quorum queue
// replicates and confirms each one. A lone write keeps the one-write form,
// which every consumer version reads.
type envelope struct {
	Op         string     `json:"op,omitempty"`
	Key        string     `json:"key,omitempty"`
	Value      string     `json:"value,omitempty"`
	Version    string     `json:"version,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	Writes     []envelope `json:"writes,omitempty"`
}

func envelopeOf(w kv.Write) envelope {
	at := w.AcceptedAt
	return envelope{Op: w.Op.String(), Key: w.Key, Value: w.Value, Version: w.Version.String(), AcceptedAt: &at}
}

// Encode returns the message body for w.
func Encode(w kv.Write) ([]byte, error) { return EncodeBatch([]kv.Write{w}) }

// EncodeBatch returns the body of one message carrying ws, in order: the
// one-write form when ws holds one write.
func EncodeBatch(ws []kv.Write) ([]byte, error) {
	var env envelope
	switch len(ws) {
	case 0:
		return nil, errors.New("queue: encode: no write")
	case 1:
		env = envelopeOf(ws[0])
	default:
		env.Writes = make([]envelope, len(ws))
		for i, w := range ws {
			env.Writes[i] = envelopeOf(w)
		}
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("queue: encode: %w", err)
	}
	return body, nil
}

// Decode reads a one-write message body made by Encode; see DecodeBatch.
func Decode(body []byte, limits kv.Limits) (kv.Write, error) {
	ws, err := DecodeBatch(body, limits)
	if err != nil {
		return kv.Write{}, err
	}
	if len(ws) != 1 {
		return kv.Write{}, fmt.Errorf("%w: %d writes in a message where one was expected", ErrUndecodable, len(ws))
	}
	return ws[0], nil
}

// DecodeBatch reads a message body made by Encode or EncodeBatch and checks
// every write against limits, so that a write the API would have refused is
// never applied. One bad write makes the whole message undecodable: the
// API wrote every message whole, so a bad part means the message was not
// written by a compatible API, and none of it can be trusted.
func DecodeBatch(body []byte, limits kv.Limits) ([]kv.Write, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if env.Writes == nil {
		w, err := decodeWrite(env, limits)
		if err != nil {
			return nil, err
		}
		return []kv.Write{w}, nil
	}
	if env.Op != "" || env.Key != "" || env.Version != "" {
		return nil, fmt.Errorf("%w: a message carries either one write or a list of writes, not both", ErrUndecodable)
	}
	if len(env.Writes) == 0 {
		return nil, fmt.Errorf("%w: empty list of writes", ErrUndecodable)
	}
	ws := make([]kv.Write, len(env.Writes))
	for i, e := range env.Writes {
		if e.Writes != nil {
			return nil, fmt.Errorf("%w: write %d is itself a list", ErrUndecodable, i)
		}
		w, err := decodeWrite(e, limits)
		if err != nil {
			return nil, fmt.Errorf("write %d: %w", i, err)
		}
		ws[i] = w
	}
	return ws, nil
}

// decodeWrite reads one write's fields and checks it against limits.
func decodeWrite(env envelope, limits kv.Limits) (kv.Write, error) {
	w := kv.Write{Key: env.Key, Value: env.Value}
	if env.AcceptedAt != nil {
		w.AcceptedAt = *env.AcceptedAt
	}
	switch env.Op {
	case "put":
		w.Op = kv.OpPut
	case "delete":
		w.Op = kv.OpDelete
	default:
		return kv.Write{}, fmt.Errorf("%w: unknown op %q", ErrUndecodable, env.Op)
	}
	v, err := version.Parse(env.Version)
	if err != nil {
		return kv.Write{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	w.Version = v
	if err := limits.Validate(w); err != nil {
		return kv.Write{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return w, nil
}
