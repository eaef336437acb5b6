package cache

import (
	"errors"
	"fmt"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

// An entry is stored in Redis as the 16-byte version (so the Lua script can
// compare it bytewise), one flag byte, then the value's bytes.
const (
	flagValue     byte = 0
	flagTombstone byte = 1
	headerSize         = version.Size + 1
)

// errCorrupt marks an entry that this code did not write; it is treated as a
// miss so that the database answers and the fill replaces it.
var errCorrupt = errors.New("corrupt cache entry")

// appendEntry appends the encoding of item to b.
func appendEntry(b []byte, item kv.Item) []byte {
	b = item.Version.AppendBinary(b)
	if item.Deleted {
		return append(b, flagTombstone)
	}
	b = append(b, flagValue)
	return append(b, item.Value...)
}

// encodeEntry returns the encoding of item in one allocation.
func encodeEntry(item kv.Item) []byte {
	return appendEntry(make([]byte, 0, headerSize+len(item.Value)), item)
}

// decodeEntry reads an entry written by encodeEntry.
func decodeEntry(key string, raw []byte) (kv.Item, error) {
	if len(raw) < headerSize {
		return kv.Item{}, fmt.Errorf("%w: %d bytes", errCorrupt, len(raw))
	}
	v, err := version.FromBytes(raw[:version.Size])
	if err != nil {
		return kv.Item{}, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	item := kv.Item{Key: key, Version: v}
	switch raw[version.Size] {
	case flagValue:
		item.Value = string(raw[headerSize:])
	case flagTombstone:
		if len(raw) != headerSize {
			return kv.Item{}, fmt.Errorf("%w: tombstone with a value", errCorrupt)
		}
		item.Deleted = true
	default:
		return kv.Item{}, fmt.Errorf("%w: flag %d", errCorrupt, raw[version.Size])
	}
	return item, nil
}
