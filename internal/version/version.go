// Package version gives every accepted write a version that orders it against
// every other write to the same key, on any API replica, across restarts.
//
// A Version is a hybrid logical clock reading (wall-clock milliseconds in the
// high 48 bits, a logical counter in the low 16) plus the id of the replica
// that issued it as a tie-break. Versions compare as plain unsigned integers,
// and their 16-byte big-endian encoding compares the same way bytewise, which
// is what lets PostgreSQL, CockroachDB and a Redis Lua script order them
// without knowing anything about clocks.
package version

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Size is the length of a Version's binary encoding.
const Size = 16

// logicalBits is the width of the counter that orders writes issued within the
// same wall-clock millisecond.
const logicalBits = 16

// Version orders writes: the higher one wins. The zero Version is lower than
// any version a Clock issues and stands for "nothing was ever written".
type Version struct {
	// HLC is the hybrid logical clock reading: milliseconds since the Unix
	// epoch shifted left by 16 bits, plus a logical counter.
	HLC uint64
	// Node is the id of the replica that issued the version; it only breaks
	// ties between replicas whose clocks gave the same HLC.
	Node uint64
}

// ErrMalformed is returned when a version's text or binary form cannot be parsed.
var ErrMalformed = errors.New("malformed version")

// Compare returns -1, 0 or +1 as v is lower than, equal to or higher than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.HLC < o.HLC:
		return -1
	case v.HLC > o.HLC:
		return 1
	case v.Node < o.Node:
		return -1
	case v.Node > o.Node:
		return 1
	}
	return 0
}

// Less reports whether v orders before o.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// IsZero reports whether v is the zero Version.
func (v Version) IsZero() bool { return v == Version{} }

// Time returns the wall-clock time encoded in the version, to the millisecond.
func (v Version) Time() time.Time {
	return time.UnixMilli(int64(v.HLC >> logicalBits))
}

// AppendBinary appends the 16-byte big-endian encoding of v to b.
func (v Version) AppendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, v.HLC)
	return binary.BigEndian.AppendUint64(b, v.Node)
}

// Bytes returns the 16-byte big-endian encoding of v.
func (v Version) Bytes() []byte { return v.AppendBinary(make([]byte, 0, Size)) }

// FromBytes decodes the encoding made by Bytes.
func FromBytes(b []byte) (Version, error) {
	if len(b) != Size {
		return Version{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	return Version{HLC: binary.BigEndian.Uint64(b[:8]), Node: binary.BigEndian.Uint64(b[8:])}, nil
}

// String returns the version as 32 lowercase hex digits; the strings of two
// versions compare in the same order as the versions.
func (v Version) String() string {
	var raw [Size]byte
	binary.BigEndian.PutUint64(raw[:8], v.HLC)
	binary.BigEndian.PutUint64(raw[8:], v.Node)
	return hex.EncodeToString(raw[:])
}

// Parse reads the form made by String.
func Parse(s string) (Version, error) {
	if len(s) != 2*Size {
		return Version{}, fmt.Errorf("%w: %d characters, want %d", ErrMalformed, len(s), 2*Size)
	}
	var raw [Size]byte
	if _, err := hex.Decode(raw[:], []byte(s)); err != nil {
		return Version{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return FromBytes(raw[:])
}

// Floor returns the lowest version whose wall-clock part is at or after t:
// every version a clock issues at t or later compares at or above it. The
// tombstone purge uses it as a cut-off.
func Floor(t time.Time) Version {
	return Version{HLC: uint64(t.UnixMilli()) << logicalBits}
}
