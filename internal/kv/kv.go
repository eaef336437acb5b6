// Package kv is the domain of the store: what a key, a value and a write are,
// the rules they follow, the errors a client can see, and the read and write
// paths expressed against small interfaces (Cache, Store, Publisher) that the
// adapters satisfy.
package kv

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/kvfleet/kvfleet/internal/version"
)

// Op is the kind of a write.
type Op uint8

// The two kinds of write. A delete is a write too: it leaves a versioned
// tombstone, so that an older put delivered late cannot bring the key back.
const (
	OpPut Op = iota + 1
	OpDelete
)

// String returns the op's wire name.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Write is one accepted mutation of a key, as it travels from the API replica
// that accepted it to the consumer that applies it.
type Write struct {
	Op      Op
	Key     string
	Value   string // empty for a delete
	Version version.Version
	// AcceptedAt is when the API replica accepted the write; the consumer
	// measures the write-to-apply lag from it.
	AcceptedAt time.Time
}

// Item is the state of a key: its latest value, or a tombstone.
type Item struct {
	Key     string
	Value   string
	Version version.Version
	// Deleted marks a tombstone (the latest write was a delete) or, with a
	// zero Version, a key that was never written.
	Deleted bool
}

// Errors a client can observe.
var (
	// ErrNotFound means the key was never written or its latest write is a delete.
	ErrNotFound = errors.New("key not found")
	// ErrUnavailable means a write could not be confirmed by the broker in
	// time; the client should retry later.
	ErrUnavailable = errors.New("write service unavailable")
	// ErrQueueFull means the broker refused a write, which it does when the
	// write queue holds as many bytes as it is allowed to (its consumers
	// are behind); the client should retry once they have caught up.
	ErrQueueFull = errors.New("write queue full")
	// ErrStoreUnavailable means a read missed the cache and the database
	// could not answer.
	ErrStoreUnavailable = errors.New("database unavailable")
)

// InvalidError is a client mistake: it carries a stable machine code and a
// human message, and never anything from the server's internals.
type InvalidError struct {
	Code    string
	Message string
}

func (e *InvalidError) Error() string { return e.Message }

// Invalid returns an *InvalidError.
func Invalid(code, format string, args ...any) error {
	return &InvalidError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limits bound what a client may store. Both sizes are in bytes of UTF-8.
type Limits struct {
	MaxKeyBytes   int
	MaxValueBytes int
}

// DefaultLimits are the limits a fleet runs with unless configured otherwise.
var DefaultLimits = Limits{MaxKeyBytes: 1024, MaxValueBytes: 1 << 20}

// ValidateKey checks a key: non-empty, valid UTF-8, not over the limit. Keys
// are otherwise opaque: any character, including '/', '?', '#', spaces and
// NUL, is stored byte for byte.
func (l Limits) ValidateKey(key string) error {
	switch {
	case key == "":
		return Invalid("missing_key", "key_name is required and must not be empty")
	case len(key) > l.MaxKeyBytes:
		return Invalid("key_too_long", "key is %d bytes; the limit is %d", len(key), l.MaxKeyBytes)
	case !utf8.ValidString(key):
		return Invalid("invalid_utf8", "key is not valid UTF-8")
	}
	return nil
}

// ValidateValue checks a value: valid UTF-8 and not over the limit. The
// empty value is allowed.
func (l Limits) ValidateValue(value string) error {
	switch {
	case len(value) > l.MaxValueBytes:
		return Invalid("value_too_large", "key_value is %d bytes; the limit is %d", len(value), l.MaxValueBytes)
	case !utf8.ValidString(value):
		return Invalid("invalid_utf8", "key_value is not valid UTF-8")
	}
	return nil
}

// Validate checks a whole write as a consumer receives it.
func (l Limits) Validate(w Write) error {
	if w.Op != OpPut && w.Op != OpDelete {
		return Invalid("invalid_op", "unknown op %d", w.Op)
	}
	if w.Version.IsZero() {
		return Invalid("invalid_version", "write has no version")
	}
	if err := l.ValidateKey(w.Key); err != nil {
		return err
	}
	if w.Op == OpDelete && w.Value != "" {
		return Invalid("invalid_value", "a delete carries no value")
	}
	return l.ValidateValue(w.Value)
}

// Newest reduces a batch of writes to the one with the highest version per
// key, keeping the order of first appearance. Applying only those gives the
// same end state as applying all of them in any order, since each key keeps
// the write with the highest version.
func Newest(writes []Write) []Write {
	index := make(map[string]int, len(writes))
	out := make([]Write, 0, len(writes))
	for _, w := range writes {
		i, seen := index[w.Key]
		switch {
		case !seen:
			index[w.Key] = len(out)
			out = append(out, w)
		case out[i].Version.Less(w.Version):
			out[i] = w
		}
	}
	return out
}

// Item returns the state a key is left in once this write is applied.
func (w Write) Item() Item {
	return Item{Key: w.Key, Value: w.Value, Version: w.Version, Deleted: w.Op == OpDelete}
}
