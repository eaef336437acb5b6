package queue

import (
	"bytes"
	"encoding/binary"
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

// ContentType names the message format that Encode writes.
const ContentType = "application/x-kvfleet-writes"

// A message body carries one or more writes in a length-prefixed binary
// form, so that its size stays within a few dozen bytes of the keys and
// values it carries whatever bytes they hold. (The JSON form it replaces
// escaped '<', '>', '&' and control characters into six bytes each: a
// 1 MiB value of '<' became a 6 MiB message, and a few hundred of them held
// behind busy consumers ran the brokers out of memory.) It is also
// binary-safe, where JSON could carry only valid UTF-8.
//
//	magic    "KVF\x01"
//	count    uvarint, at least 1
//	count times:
//	  op       1 byte (1 put, 2 delete)
//	  version  16 bytes, version.Version's binary form
//	  accepted varint seconds and uvarint nanoseconds since the Unix epoch
//	  key      uvarint length, then the bytes
//	  value    uvarint length, then the bytes
//
// The publisher groups the writes of concurrent requests into one message
// when the broker is busy (see Publisher), because the broker's cost is per
// message: a quorum queue replicates and confirms each one.
//
// Decoding also reads the JSON form that earlier versions of the API wrote,
// so that messages still queued across an upgrade are applied.
var magic = []byte("KVF\x01")

// overhead bounds what a message adds to its writes' keys and values:
// the magic and count, then per write its op, version, time and two
// lengths. Tests hold Encode to it.
const (
	messageOverhead = 4 + binary.MaxVarintLen64
	writeOverhead   = 1 + version.Size + 2*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64
)

// MaxMessageBytes is the largest body Encode can make from writes whose
// keys and values together hold at most payload bytes, in at most n writes.
func MaxMessageBytes(payload, n int) int {
	return messageOverhead + n*writeOverhead + payload
}

// Encode returns the message body for w.
func Encode(w kv.Write) ([]byte, error) { return EncodeBatch([]kv.Write{w}) }

// EncodeBatch returns the body of one message carrying ws, in order.
func EncodeBatch(ws []kv.Write) ([]byte, error) {
	if len(ws) == 0 {
		return nil, errors.New("queue: encode: no write")
	}
	size := 0
	for _, w := range ws {
		size += len(w.Key) + len(w.Value)
	}
	b := make([]byte, 0, MaxMessageBytes(size, len(ws)))
	b = append(b, magic...)
	b = binary.AppendUvarint(b, uint64(len(ws)))
	for _, w := range ws {
		if w.Op != kv.OpPut && w.Op != kv.OpDelete {
			return nil, fmt.Errorf("queue: encode: unknown op %d", w.Op)
		}
		b = append(b, byte(w.Op))
		b = w.Version.AppendBinary(b)
		b = binary.AppendVarint(b, w.AcceptedAt.Unix())
		b = binary.AppendUvarint(b, uint64(w.AcceptedAt.Nanosecond()))
		b = binary.AppendUvarint(b, uint64(len(w.Key)))
		b = append(b, w.Key...)
		b = binary.AppendUvarint(b, uint64(len(w.Value)))
		b = append(b, w.Value...)
	}
	return b, nil
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

// DecodeBatch reads a message body made by Encode or EncodeBatch (or the
// JSON form of earlier versions) and checks every write against limits, so
// that a write the API would have refused is never applied. One bad write
// makes the whole message undecodable: the API wrote every message whole,
// so a bad part means the message was not written by a compatible API, and
// none of it can be trusted.
func DecodeBatch(body []byte, limits kv.Limits) ([]kv.Write, error) {
	if !bytes.HasPrefix(body, magic) {
		return decodeJSON(body, limits)
	}
	d := decoder{b: body[len(magic):]}
	n := d.uvarint()
	// Every write takes at least its op and version: a count beyond what
	// the body could hold is refused before anything is allocated for it.
	if d.err == nil && (n == 0 || n > uint64(len(d.b)/(1+version.Size))) {
		return nil, fmt.Errorf("%w: %d writes in a body of %d bytes", ErrUndecodable, n, len(body))
	}
	ws := make([]kv.Write, 0, n)
	for i := uint64(0); d.err == nil && i < n; i++ {
		w := d.write(limits)
		if d.err != nil {
			return nil, fmt.Errorf("%w: write %d: %v", ErrUndecodable, i, d.err)
		}
		if err := limits.Validate(w); err != nil {
			return nil, fmt.Errorf("%w: write %d: %v", ErrUndecodable, i, err)
		}
		ws = append(ws, w)
	}
	switch {
	case d.err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUndecodable, d.err)
	case len(d.b) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the last write", ErrUndecodable, len(d.b))
	}
	return ws, nil
}

// decoder reads the binary form; its first error stops every later read.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated message")

func (d *decoder) uvarint() uint64 { return varint(d, binary.Uvarint) }
func (d *decoder) varint() int64   { return varint(d, binary.Varint) }

// varint reads one number with read (binary.Uvarint or binary.Varint).
func varint[T int64 | uint64](d *decoder, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errTruncated
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

// bytesUpTo reads a length-prefixed field of at most limit bytes; a longer
// one is refused before it is copied.
func (d *decoder) bytesUpTo(field string, limit int) string {
	n := d.uvarint()
	if d.err == nil && n > uint64(limit) {
		d.err = fmt.Errorf("%s is %d bytes; the limit is %d", field, n, limit)
		return ""
	}
	return string(d.take(int(n)))
}

func (d *decoder) write(limits kv.Limits) kv.Write {
	var w kv.Write
	if op := d.take(1); op != nil {
		w.Op = kv.Op(op[0])
	}
	if raw := d.take(version.Size); raw != nil {
		w.Version, _ = version.FromBytes(raw)
	}
	secs, nanos := d.varint(), d.uvarint()
	if d.err == nil && nanos >= uint64(time.Second) {
		d.err = fmt.Errorf("accepted time has %d nanoseconds", nanos)
	}
	w.AcceptedAt = time.Unix(secs, int64(nanos)).UTC()
	w.Key = d.bytesUpTo("key", limits.MaxKeyBytes)
	w.Value = d.bytesUpTo("value", limits.MaxValueBytes)
	return w
}

// jsonEnvelope is the JSON form of earlier versions: one write as the
// object's own fields, or several in the list Writes.
type jsonEnvelope struct {
	Op         string         `json:"op,omitempty"`
	Key        string         `json:"key,omitempty"`
	Value      string         `json:"value,omitempty"`
	Version    string         `json:"version,omitempty"`
	AcceptedAt *time.Time     `json:"accepted_at,omitempty"`
	Writes     []jsonEnvelope `json:"writes,omitempty"`
}

func decodeJSON(body []byte, limits kv.Limits) ([]kv.Write, error) {
	var env jsonEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if env.Writes == nil {
		w, err := decodeJSONWrite(env, limits)
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
		w, err := decodeJSONWrite(e, limits)
		if err != nil {
			return nil, fmt.Errorf("write %d: %w", i, err)
		}
		ws[i] = w
	}
	return ws, nil
}

func decodeJSONWrite(env jsonEnvelope, limits kv.Limits) (kv.Write, error) {
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
