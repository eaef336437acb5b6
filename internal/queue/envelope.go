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

// envelope is a write as it sits in the queue. It is JSON so that an
// operator can read a dead-lettered message in the management UI.
type envelope struct {
	Op         string    `json:"op"`
	Key        string    `json:"key"`
	Value      string    `json:"value,omitempty"`
	Version    string    `json:"version"`
	AcceptedAt time.Time `json:"accepted_at"`
}

// Encode returns the message body for w.
func Encode(w kv.Write) ([]byte, error) {
	body, err := json.Marshal(envelope{
		Op:         w.Op.String(),
		Key:        w.Key,
		Value:      w.Value,
		Version:    w.Version.String(),
		AcceptedAt: w.AcceptedAt,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: encode: %w", err)
	}
	return body, nil
}

// Decode reads a message body made by Encode and checks it against limits,
// so that a write the API would have refused is never applied.
func Decode(body []byte, limits kv.Limits) (kv.Write, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return kv.Write{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	w := kv.Write{Key: env.Key, Value: env.Value, AcceptedAt: env.AcceptedAt}
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
