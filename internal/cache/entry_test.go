package cache

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

func TestEntryRoundTrip(t *testing.T) {
	v := version.Version{HLC: 0x0123456789abcdef, Node: 0xfedcba9876543210}
	tests := []struct {
		name string
		item kv.Item
	}{
		{"value", kv.Item{Key: "k", Value: "hello", Version: v}},
		{"empty value", kv.Item{Key: "k", Value: "", Version: v}},
		{"value that looks like a tombstone flag", kv.Item{Key: "k", Value: "\x01", Version: v}},
		{"binary-ish utf-8", kv.Item{Key: "k", Value: "\x00\x01\x7f é 日本 🙂 \x00", Version: v}},
		{"one mebibyte", kv.Item{Key: "k", Value: strings.Repeat("0123456789abcdef", 1<<16), Version: v}},
		{"tombstone", kv.Item{Key: "k", Version: v, Deleted: true}},
		{"not-found marker", kv.Item{Key: "k", Deleted: true}},
		{"zero-version value", kv.Item{Key: "k", Value: "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := encodeEntry(tt.item)
			wantLen := headerSize + len(tt.item.Value)
			if tt.item.Deleted {
				wantLen = headerSize
			}
			if len(raw) != wantLen {
				t.Errorf("encoding is %d bytes, want %d", len(raw), wantLen)
			}
			// The Lua script compares the first 16 bytes as the version.
			if !bytes.Equal(raw[:version.Size], tt.item.Version.Bytes()) {
				t.Errorf("encoding starts %x, want the version %x", raw[:version.Size], tt.item.Version.Bytes())
			}
			got, err := decodeEntry(tt.item.Key, raw)
			if err != nil {
				t.Fatalf("decodeEntry: %v", err)
			}
			if got != tt.item {
				t.Errorf("round trip = %+v, want %+v", abbreviate(got), abbreviate(tt.item))
			}
		})
	}
}

func abbreviate(item kv.Item) kv.Item {
	if len(item.Value) > 64 {
		item.Value = item.Value[:64] + "…"
	}
	return item
}

func TestEncodeEntryTombstoneDropsValue(t *testing.T) {
	raw := encodeEntry(kv.Item{Key: "k", Value: "left over", Version: version.Version{HLC: 1}, Deleted: true})
	got, err := decodeEntry("k", raw)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Deleted || got.Value != "" {
		t.Errorf("decoded %+v, want a tombstone with no value", got)
	}
}

func TestAppendEntryAppends(t *testing.T) {
	item := kv.Item{Key: "k", Value: "v", Version: version.Version{HLC: 9, Node: 2}}
	raw := appendEntry([]byte("prefix"), item)
	if !bytes.HasPrefix(raw, []byte("prefix")) || !bytes.Equal(raw[len("prefix"):], encodeEntry(item)) {
		t.Errorf("appendEntry = %x, want the prefix then %x", raw, encodeEntry(item))
	}
}

func TestDecodeEntryCorrupt(t *testing.T) {
	v := version.Version{HLC: 5, Node: 1}.Bytes()
	entry := func(flag byte, rest string) []byte {
		return append(append(append([]byte(nil), v...), flag), rest...)
	}
	tests := []struct {
		name string
		raw  []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version only", v},
		{"short version", v[:version.Size-1]},
		{"one byte short of a header", entry(flagValue, "")[:headerSize-1]},
		{"unknown flag", entry(2, "")},
		{"unknown flag with a value", entry(0xff, "value")},
		{"tombstone with trailing bytes", entry(flagTombstone, "x")},
		{"tombstone with a long tail", entry(flagTombstone, strings.Repeat("x", 100))},
		{"plain string someone else wrote", []byte("hello, this is not an entry")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEntry("k", tt.raw)
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeEntry(%x) = %+v, %v; want errCorrupt", tt.raw, got, err)
			}
			if got != (kv.Item{}) {
				t.Errorf("decodeEntry(%x) returned %+v with its error, want the zero Item", tt.raw, got)
			}
		})
	}
}

func BenchmarkEncodeEntry(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"64KiB", 64 << 10}} {
		item := kv.Item{Key: "k", Value: strings.Repeat("v", size.n), Version: version.Version{HLC: 1 << 40, Node: 3}}
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			for b.Loop() {
				_ = encodeEntry(item)
			}
		})
	}
}

func BenchmarkDecodeEntry(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"64KiB", 64 << 10}} {
		raw := encodeEntry(kv.Item{Key: "k", Value: strings.Repeat("v", size.n), Version: version.Version{HLC: 1 << 40, Node: 3}})
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			for b.Loop() {
				if _, err := decodeEntry("k", raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
