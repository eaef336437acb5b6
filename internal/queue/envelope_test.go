package queue

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/version"
)

var envelopeLimits = kv.Limits{MaxKeyBytes: 16, MaxValueBytes: 32}

var envelopeVersion = version.Version{HLC: 0x0193_0000_0000_0042, Node: 7}

func sameWrite(a, b kv.Write) bool {
	return a.Op == b.Op && a.Key == b.Key && a.Value == b.Value && a.Version == b.Version && a.AcceptedAt.Equal(b.AcceptedAt)
}

func TestEnvelopeRoundTrip(t *testing.T) {
	at := time.Date(2025, 7, 8, 9, 10, 11, 123456789, time.UTC)
	tests := []struct {
		name string
		w    kv.Write
	}{
		{"put", kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion, AcceptedAt: at}},
		{"put empty value", kv.Write{Op: kv.OpPut, Key: "k", Version: envelopeVersion, AcceptedAt: at}},
		{"delete", kv.Write{Op: kv.OpDelete, Key: "k", Version: envelopeVersion, AcceptedAt: at}},
		{"unicode key", kv.Write{Op: kv.OpPut, Key: "日本/é🙂", Value: "値", Version: envelopeVersion, AcceptedAt: at}},
		{"nul in key and value", kv.Write{Op: kv.OpPut, Key: "a\x00b", Value: "\x00", Version: envelopeVersion, AcceptedAt: at}},
		{"quotes and escapes", kv.Write{Op: kv.OpPut, Key: `"k"\` + "\n\t", Value: `{"json":"inside"}`, Version: envelopeVersion, AcceptedAt: at}},
		{"html characters", kv.Write{Op: kv.OpDelete, Key: "<a&b>", Version: envelopeVersion, AcceptedAt: at}},
		{"key at the limit", kv.Write{Op: kv.OpPut, Key: strings.Repeat("k", 16), Value: strings.Repeat("v", 32), Version: envelopeVersion, AcceptedAt: at}},
		{"other time zone", kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion, AcceptedAt: at.In(time.FixedZone("x", -5*3600))}},
		{"zero accepted time", kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := Encode(tt.w)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(body, envelopeLimits)
			if err != nil {
				t.Fatalf("Decode(%s): %v", body, err)
			}
			if !sameWrite(got, tt.w) {
				t.Errorf("round trip = %+v, want %+v", got, tt.w)
			}
		})
	}
}

// TestMessageSizeStaysCloseToThePayload is the bound the brokers' memory
// and disk budgets rest on: whatever bytes a key or value holds, its message
// is at most a few dozen bytes larger. The JSON form made a 1 MiB value of
// '<' into a 6 MiB message.
func TestMessageSizeStaysCloseToThePayload(t *testing.T) {
	const size = 1 << 20
	limits := kv.Limits{MaxKeyBytes: 1024, MaxValueBytes: size}
	for _, c := range []string{"<", "\"", "\\", "\x01", "\u2028", "é"} {
		value := strings.Repeat(c, size/len(c))
		w := kv.Write{Op: kv.OpPut, Key: strings.Repeat(c, 1024/len(c)), Value: value, Version: envelopeVersion, AcceptedAt: time.Now()}
		body, err := Encode(w)
		if err != nil {
			t.Fatal(err)
		}
		payload := len(w.Key) + len(w.Value)
		if len(body) > MaxMessageBytes(payload, 1) || len(body) > payload+64 {
			t.Errorf("%q: a %d-byte key and value made a %d-byte message; want at most %d", c, payload, len(body), payload+64)
		}
		got, err := Decode(body, limits)
		if err != nil || !sameWrite(got, w) {
			t.Errorf("%q: round trip = %v", c, err)
		}
	}
}

// A value is stored byte for byte: the message form carries any bytes, so
// the only rule on what a value holds is kv.Limits'.
func TestEnvelopeCarriesAnyBytes(t *testing.T) {
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	w := kv.Write{Op: kv.OpPut, Key: "k", Value: string(all), Version: envelopeVersion}
	body, err := Encode(w)
	if err != nil {
		t.Fatal(err)
	}
	d := decoder{b: body[len(magic)+1:]}
	got := d.write(kv.Limits{MaxKeyBytes: 8, MaxValueBytes: 256})
	if d.err != nil || got.Value != w.Value {
		t.Errorf("value bytes 0..255 read back as %q, %v", got.Value, d.err)
	}
}

// Messages written by an earlier API, in JSON, are still applied after an
// upgrade.
func TestDecodeReadsTheEarlierJSONForm(t *testing.T) {
	v := envelopeVersion.String()
	one := `{"op":"put","key":"k","value":"\u003cv\u003e","version":"` + v + `","accepted_at":"2025-01-02T03:04:05Z"}`
	w, err := Decode([]byte(one), envelopeLimits)
	want := kv.Write{Op: kv.OpPut, Key: "k", Value: "<v>", Version: envelopeVersion, AcceptedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err != nil || !sameWrite(w, want) {
		t.Errorf("Decode(%s) = %+v, %v; want %+v", one, w, err, want)
	}
	batch := `{"writes":[` + one + `,{"op":"delete","key":"j","version":"` + v + `"}]}`
	ws, err := DecodeBatch([]byte(batch), envelopeLimits)
	if err != nil || len(ws) != 2 || ws[1].Op != kv.OpDelete || ws[1].Key != "j" {
		t.Errorf("DecodeBatch(%s) = %+v, %v", batch, ws, err)
	}
}

func TestDecodeBinaryErrors(t *testing.T) {
	good, err := Encode(kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion, AcceptedAt: time.Unix(1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func([]byte) []byte) []byte { return edit(append([]byte(nil), good...)) }
	// Offsets into good: magic 0-3, count 4, op 5, version 6-21, seconds
	// 22, nanoseconds 23, key length 24, key 25, value length 26, value 27.
	tests := []struct {
		name string
		body []byte
	}{
		{"magic only", []byte("KVF\x01")},
		{"zero writes", []byte("KVF\x01\x00")},
		{"count beyond the body", with(func(b []byte) []byte { b[4] = 9; return b })},
		{"count not a varint", append([]byte("KVF\x01"), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"unknown op", with(func(b []byte) []byte { b[5] = 3; return b })},
		{"zero version", with(func(b []byte) []byte { copy(b[6:22], make([]byte, 16)); return b })},
		{"nanoseconds out of range", with(func(b []byte) []byte {
			return append(append(b[:23:23], 0x80, 0x94, 0xeb, 0xdc, 0x03), good[24:]...)
		})},
		{"key length beyond the body", with(func(b []byte) []byte { b[24] = 100; return b })},
		{"key over the limit", with(func(b []byte) []byte { b[24] = 17; return b })},
		{"empty key", with(func(b []byte) []byte { return append(b[:24:24], 0, 1, 'v') })},
		{"value over the limit", with(func(b []byte) []byte { return append(b[:26:26], 33) })},
		{"truncated value", with(func(b []byte) []byte { return b[:len(b)-1] })},
		{"trailing bytes", with(func(b []byte) []byte { return append(b, 0) })},
		{"invalid UTF-8 key", with(func(b []byte) []byte { b[25] = 0xff; return b })},
		{"delete with a value", with(func(b []byte) []byte { b[5] = byte(kv.OpDelete); return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := DecodeBatch(tt.body, envelopeLimits)
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("DecodeBatch(%q) = %+v, %v; want an error wrapping ErrUndecodable", tt.body, ws, err)
			}
			if ws != nil {
				t.Errorf("DecodeBatch(%q) returned writes with its error", tt.body)
			}
		})
	}
}

func jsonBody(fields map[string]any) []byte {
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	good := func(overrides map[string]any) []byte {
		fields := map[string]any{"op": "put", "key": "k", "value": "v", "version": envelopeVersion.String(), "accepted_at": "2025-01-02T03:04:05Z"}
		for k, v := range overrides {
			if v == nil {
				delete(fields, k)
			} else {
				fields[k] = v
			}
		}
		return jsonBody(fields)
	}
	tests := []struct {
		name string
		body []byte
	}{
		{"empty body", nil},
		{"not json", []byte("garbage")},
		{"truncated json", good(nil)[:20]},
		{"json array", []byte(`[1,2,3]`)},
		{"json string", []byte(`"put"`)},
		{"json null", []byte(`null`)},
		{"empty object", []byte(`{}`)},
		{"op of the wrong type", good(map[string]any{"op": 1})},
		{"key of the wrong type", good(map[string]any{"key": []int{1}})},
		{"unknown op", good(map[string]any{"op": "upsert"})},
		{"op in capitals", good(map[string]any{"op": "PUT"})},
		{"missing op", good(map[string]any{"op": nil})},
		{"missing version", good(map[string]any{"version": nil})},
		{"version not hex", good(map[string]any{"version": strings.Repeat("z", 32)})},
		{"version too short", good(map[string]any{"version": "0193"})},
		{"version too long", good(map[string]any{"version": envelopeVersion.String() + "00"})},
		{"version as a number", good(map[string]any{"version": 12345})},
		{"zero version", good(map[string]any{"version": strings.Repeat("0", 32)})},
		{"missing key", good(map[string]any{"key": nil})},
		{"empty key", good(map[string]any{"key": ""})},
		{"key over the limit", good(map[string]any{"key": strings.Repeat("k", 17)})},
		{"multibyte key over the limit", good(map[string]any{"key": strings.Repeat("é", 9)})},
		{"value over the limit", good(map[string]any{"value": strings.Repeat("v", 33)})},
		{"delete with a value", good(map[string]any{"op": "delete", "value": "v"})},
		{"bad accepted_at", good(map[string]any{"accepted_at": "yesterday"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Decode(tt.body, envelopeLimits)
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("Decode(%s) = %+v, %v; want an error wrapping ErrUndecodable", tt.body, w, err)
			}
			if w != (kv.Write{}) {
				t.Errorf("Decode(%s) returned %+v with its error, want the zero Write", tt.body, w)
			}
		})
	}
}

// encoding/json never hands Decode invalid UTF-8: it turns invalid bytes and
// lone surrogate escapes into U+FFFD. What a consumer can observe is that
// such a key arrives as valid UTF-8 and is applied under the replaced name.
func TestDecodeInvalidUTF8BecomesReplacementCharacter(t *testing.T) {
	v := envelopeVersion.String()
	tests := []struct {
		name    string
		body    string
		wantKey string
	}{
		{"raw invalid byte", `{"op":"delete","key":"a` + "\xff" + `b","version":"` + v + `"}`, "a\ufffdb"},
		{"lone surrogate escape", `{"op":"delete","key":"a\ud800b","version":"` + v + `"}`, "a\ufffdb"},
		{"truncated multibyte", `{"op":"delete","key":"` + "\xc3" + `","version":"` + v + `"}`, "\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Decode([]byte(tt.body), envelopeLimits)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if w.Key != tt.wantKey {
				t.Errorf("key = %q, want %q", w.Key, tt.wantKey)
			}
			if err := envelopeLimits.Validate(w); err != nil {
				t.Errorf("decoded write fails validation: %v", err)
			}
		})
	}
}

func TestDecodeAppliesTheGivenLimits(t *testing.T) {
	b, err := Encode(kv.Write{Op: kv.OpPut, Key: strings.Repeat("k", 20), Value: "v", Version: envelopeVersion})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b, kv.DefaultLimits); err != nil {
		t.Errorf("Decode with the default limits: %v", err)
	}
	if _, err := Decode(b, envelopeLimits); !errors.Is(err, ErrUndecodable) {
		t.Errorf("Decode with a 16-byte key limit: %v, want ErrUndecodable", err)
	}
}

func FuzzDecode(f *testing.F) {
	at := time.Date(2025, 7, 8, 9, 10, 11, 5, time.UTC)
	for _, w := range []kv.Write{
		{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion, AcceptedAt: at},
		{Op: kv.OpDelete, Key: "日本\x00\"", Version: envelopeVersion, AcceptedAt: at},
		{Op: kv.OpPut, Key: strings.Repeat("k", 16), Value: strings.Repeat("v", 32), Version: version.Version{HLC: 1}},
	} {
		b, err := Encode(w)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"op":"delete","key":"k","value":"v","version":"00000000000000000000000000000001"}`))
	f.Add([]byte(`{"op":"put","key":"k","version":"00000000000000000000000000000000"}`))
	f.Add([]byte(`{"op":"put","key":"\ud800","version":"0000000000000000000000000000000A","accepted_at":"0000-01-01T00:00:00+23:59"}`))
	f.Add([]byte("garbage"))
	f.Add([]byte(nil))

	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := Decode(b, envelopeLimits)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("Decode error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		if err := envelopeLimits.Validate(w); err != nil {
			t.Fatalf("Decode accepted %+v, which Validate refuses: %v", w, err)
		}
		// What was accepted can be queued again and reads back the same.
		again, err := Encode(w)
		if err != nil {
			t.Fatalf("Encode(%+v) of a decoded write: %v", w, err)
		}
		w2, err := Decode(again, envelopeLimits)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if !sameWrite(w, w2) {
			t.Fatalf("re-decoded %+v, want %+v", w2, w)
		}
	})
}

func TestEnvelopeBatchRoundTrip(t *testing.T) {
	at := time.Date(2025, 7, 8, 9, 10, 11, 123456789, time.UTC)
	ws := []kv.Write{
		{Op: kv.OpPut, Key: "a", Value: "1", Version: envelopeVersion, AcceptedAt: at},
		{Op: kv.OpDelete, Key: "b", Version: version.Version{HLC: envelopeVersion.HLC + 1, Node: 7}, AcceptedAt: at},
		// The same key twice: a message keeps every write, in order; the
		// consumer picks the newest.
		{Op: kv.OpPut, Key: "a", Value: "2", Version: version.Version{HLC: envelopeVersion.HLC + 2, Node: 7}, AcceptedAt: at},
	}
	body, err := EncodeBatch(ws)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(body, envelopeLimits)
	if err != nil {
		t.Fatalf("DecodeBatch(%s): %v", body, err)
	}
	if len(got) != len(ws) {
		t.Fatalf("DecodeBatch returned %d writes, want %d", len(got), len(ws))
	}
	for i := range ws {
		if !sameWrite(got[i], ws[i]) {
			t.Errorf("write %d = %+v, want %+v", i, got[i], ws[i])
		}
	}
	if _, err := Decode(body, envelopeLimits); !errors.Is(err, ErrUndecodable) {
		t.Errorf("Decode of a three-write message: %v, want ErrUndecodable", err)
	}
}

func TestEncodeBatchOfOneIsTheOneWriteForm(t *testing.T) {
	w := kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion}
	one, err := Encode(w)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := EncodeBatch([]kv.Write{w})
	if err != nil {
		t.Fatal(err)
	}
	if string(one) != string(batch) {
		t.Errorf("EncodeBatch of one write = %q, want the one-write form %q", batch, one)
	}
	got, err := DecodeBatch(one, envelopeLimits)
	if err != nil || len(got) != 1 || !sameWrite(got[0], w) {
		t.Errorf("DecodeBatch(one-write form) = %+v, %v; want [%+v]", got, err, w)
	}
	if _, err := EncodeBatch(nil); err == nil {
		t.Error("EncodeBatch(nil) succeeded, want an error: a message carries at least one write")
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	v := envelopeVersion.String()
	write := `{"op":"put","key":"k","value":"v","version":"` + v + `"}`
	tests := []struct {
		name string
		body string
	}{
		{"empty list", `{"writes":[]}`},
		{"list and one-write fields", `{"op":"put","key":"k","version":"` + v + `","writes":[` + write + `]}`},
		{"nested list", `{"writes":[{"writes":[` + write + `]}]}`},
		{"one bad write among good ones", `{"writes":[` + write + `,{"op":"upsert","key":"k","version":"` + v + `"}]}`},
		{"one write over the limits", `{"writes":[` + write + `,{"op":"put","key":"` + strings.Repeat("k", 17) + `","version":"` + v + `"}]}`},
		{"list of the wrong type", `{"writes":{"op":"put"}}`},
		{"list of numbers", `{"writes":[1,2]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := DecodeBatch([]byte(tt.body), envelopeLimits)
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("DecodeBatch(%s) = %+v, %v; want an error wrapping ErrUndecodable", tt.body, ws, err)
			}
			if ws != nil {
				t.Errorf("DecodeBatch(%s) returned %+v with its error, want none: a message is applied whole or not at all", tt.body, ws)
			}
		})
	}
}

func FuzzDecodeBatch(f *testing.F) {
	at := time.Date(2025, 7, 8, 9, 10, 11, 5, time.UTC)
	b, err := EncodeBatch([]kv.Write{
		{Op: kv.OpPut, Key: "k", Value: "v", Version: envelopeVersion, AcceptedAt: at},
		{Op: kv.OpDelete, Key: "日本\x00\"", Version: envelopeVersion, AcceptedAt: at},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"writes":[{"op":"put","key":"k","version":"00000000000000000000000000000001"},{}]}`))
	f.Add([]byte(`{"writes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := DecodeBatch(b, envelopeLimits)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("DecodeBatch error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		if len(ws) == 0 {
			t.Fatal("DecodeBatch accepted a message with no write")
		}
		for _, w := range ws {
			if err := envelopeLimits.Validate(w); err != nil {
				t.Fatalf("DecodeBatch accepted %+v, which Validate refuses: %v", w, err)
			}
		}
		again, err := EncodeBatch(ws)
		if err != nil {
			t.Fatalf("EncodeBatch of decoded writes: %v", err)
		}
		ws2, err := DecodeBatch(again, envelopeLimits)
		if err != nil || len(ws2) != len(ws) {
			t.Fatalf("re-decoding %s: %d writes, %v; want %d", again, len(ws2), err, len(ws))
		}
		for i := range ws {
			if !sameWrite(ws[i], ws2[i]) {
				t.Fatalf("re-decoded write %d = %+v, want %+v", i, ws2[i], ws[i])
			}
		}
	})
}
