package kv_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/kvfleet/kvfleet/internal/kv"
	"github.com/kvfleet/kvfleet/internal/kvtest"
	"github.com/kvfleet/kvfleet/internal/version"
)

// testLimits are small so that the boundaries are easy to write down.
var testLimits = kv.Limits{MaxKeyBytes: 8, MaxValueBytes: 16}

// wantCode checks that err is an *kv.InvalidError with the code want, or nil
// when want is empty.
func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("error = %v, want nil", err)
		}
		return
	}
	var invalid *kv.InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("error = %v (%T), want *kv.InvalidError with code %q", err, err, want)
	}
	if invalid.Code != want {
		t.Fatalf("code = %q (%s), want %q", invalid.Code, invalid.Message, want)
	}
	if invalid.Message == "" || invalid.Error() != invalid.Message {
		t.Fatalf("message = %q, Error() = %q; want the same non-empty text", invalid.Message, invalid.Error())
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name, key, code string
	}{
		{"empty", "", "missing_key"},
		{"one byte", "a", ""},
		{"at the limit", strings.Repeat("k", 8), ""},
		{"one over the limit", strings.Repeat("k", 9), "key_too_long"},
		{"multibyte at the limit", "éééé", ""},
		{"multibyte over the limit counts bytes", "ééééé", "key_too_long"},
		{"opaque characters", "a/?# \x00\"", ""},
		{"invalid utf-8", "a\xffb", "invalid_utf8"},
		{"truncated multibyte", "\xc3", "invalid_utf8"},
		{"surrogate half", "\xed\xa0\x80", "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, testLimits.ValidateKey(tt.key), tt.code)
		})
	}
}

func TestValidateValue(t *testing.T) {
	tests := []struct {
		name, value, code string
	}{
		{"empty is allowed", "", ""},
		{"at the limit", strings.Repeat("v", 16), ""},
		{"one over the limit", strings.Repeat("v", 17), "value_too_large"},
		{"multibyte over the limit counts bytes", strings.Repeat("é", 9), "value_too_large"},
		{"nul and newlines", "a\x00b\nc", ""},
		{"invalid utf-8", "\xff", "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, testLimits.ValidateValue(tt.value), tt.code)
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	wantCode(t, kv.DefaultLimits.ValidateKey(strings.Repeat("k", 1024)), "")
	wantCode(t, kv.DefaultLimits.ValidateKey(strings.Repeat("k", 1025)), "key_too_long")
	wantCode(t, kv.DefaultLimits.ValidateValue(strings.Repeat("v", 1<<20)), "")
	wantCode(t, kv.DefaultLimits.ValidateValue(strings.Repeat("v", 1<<20+1)), "value_too_large")
}

func TestValidateWrite(t *testing.T) {
	v := kvtest.V(1 << 20)
	tests := []struct {
		name string
		w    kv.Write
		code string
	}{
		{"put", kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: v}, ""},
		{"put empty value", kv.Write{Op: kv.OpPut, Key: "k", Version: v}, ""},
		{"delete", kv.Write{Op: kv.OpDelete, Key: "k", Version: v}, ""},
		{"version with node only", kv.Write{Op: kv.OpPut, Key: "k", Version: version.Version{Node: 1}}, ""},
		{"delete with value", kv.Write{Op: kv.OpDelete, Key: "k", Value: "v", Version: v}, "invalid_value"},
		{"zero version", kv.Write{Op: kv.OpPut, Key: "k", Value: "v"}, "invalid_version"},
		{"zero op", kv.Write{Key: "k", Version: v}, "invalid_op"},
		{"unknown op", kv.Write{Op: 3, Key: "k", Version: v}, "invalid_op"},
		{"empty key", kv.Write{Op: kv.OpPut, Value: "v", Version: v}, "missing_key"},
		{"key over the limit", kv.Write{Op: kv.OpDelete, Key: strings.Repeat("k", 9), Version: v}, "key_too_long"},
		{"key invalid utf-8", kv.Write{Op: kv.OpPut, Key: "\xff", Version: v}, "invalid_utf8"},
		{"value over the limit", kv.Write{Op: kv.OpPut, Key: "k", Value: strings.Repeat("v", 17), Version: v}, "value_too_large"},
		{"value invalid utf-8", kv.Write{Op: kv.OpPut, Key: "k", Value: "\xfe", Version: v}, "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, testLimits.Validate(tt.w), tt.code)
		})
	}
}

func TestOpString(t *testing.T) {
	tests := []struct {
		op   kv.Op
		want string
	}{
		{kv.OpPut, "put"},
		{kv.OpDelete, "delete"},
		{0, "op(0)"},
		{9, "op(9)"},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(tt.op), got, tt.want)
		}
	}
}

func TestWriteItem(t *testing.T) {
	tests := []struct {
		name string
		w    kv.Write
		want kv.Item
	}{
		{"put", kv.Write{Op: kv.OpPut, Key: "k", Value: "v", Version: kvtest.V(3)}, kv.Item{Key: "k", Value: "v", Version: kvtest.V(3)}},
		{"delete", kv.Write{Op: kv.OpDelete, Key: "k", Version: kvtest.V(4)}, kv.Item{Key: "k", Version: kvtest.V(4), Deleted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Item(); got != tt.want {
				t.Errorf("Item() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func put(key, value string, hlc uint64) kv.Write {
	return kv.Write{Op: kv.OpPut, Key: key, Value: value, Version: kvtest.V(hlc)}
}

func del(key string, hlc uint64) kv.Write {
	return kv.Write{Op: kv.OpDelete, Key: key, Version: kvtest.V(hlc)}
}

func TestNewest(t *testing.T) {
	tests := []struct {
		name string
		in   []kv.Write
		want []kv.Write
	}{
		{"empty", nil, []kv.Write{}},
		{"one", []kv.Write{put("a", "1", 1)}, []kv.Write{put("a", "1", 1)}},
		{"ascending", []kv.Write{put("a", "1", 1), put("a", "2", 2), put("a", "3", 3)}, []kv.Write{put("a", "3", 3)}},
		{"descending", []kv.Write{put("a", "3", 3), put("a", "2", 2), put("a", "1", 1)}, []kv.Write{put("a", "3", 3)}},
		{"highest in the middle", []kv.Write{put("a", "1", 1), del("a", 5), put("a", "2", 2)}, []kv.Write{del("a", 5)}},
		{
			"keys keep the order of first appearance",
			[]kv.Write{put("b", "1", 1), put("a", "1", 2), put("c", "1", 3), put("a", "2", 4), put("b", "0", 1<<10), del("c", 2)},
			[]kv.Write{put("b", "0", 1<<10), put("a", "2", 4), put("c", "1", 3)},
		},
		{
			"node breaks a tie of hlc",
			[]kv.Write{
				{Op: kv.OpPut, Key: "a", Value: "node 2", Version: version.Version{HLC: 9, Node: 2}},
				{Op: kv.OpPut, Key: "a", Value: "node 1", Version: version.Version{HLC: 9, Node: 1}},
			},
			[]kv.Write{{Op: kv.OpPut, Key: "a", Value: "node 2", Version: version.Version{HLC: 9, Node: 2}}},
		},
		{"redelivered duplicate", []kv.Write{put("a", "1", 1), put("a", "1", 1)}, []kv.Write{put("a", "1", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]kv.Write(nil), tt.in...)
			got := kv.Newest(in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Newest(%v)\n got  %v\n want %v", tt.in, got, tt.want)
			}
			if !reflect.DeepEqual(in, tt.in) {
				t.Errorf("Newest modified its input: %v, was %v", in, tt.in)
			}
		})
	}
}

// writeLog returns a random log of writes to a few keys with distinct
// versions, some of them delivered twice.
func writeLog(r *rand.Rand) []kv.Write {
	keys := []string{"a", "b", "c", "d", "e"}[:1+r.Intn(5)]
	n := 1 + r.Intn(40)
	hlcs := r.Perm(1000)[:n]
	var log []kv.Write
	for i := 0; i < n; i++ {
		key := keys[r.Intn(len(keys))]
		hlc := uint64(hlcs[i] + 1)
		var w kv.Write
		if r.Intn(4) == 0 {
			w = del(key, hlc)
		} else {
			w = put(key, fmt.Sprintf("value %d", hlc), hlc)
		}
		w.Version.Node = uint64(1 + r.Intn(3))
		log = append(log, w)
		if r.Intn(5) == 0 {
			log = append(log, w)
		}
	}
	return log
}

func items(ws []kv.Write) []kv.Item {
	out := make([]kv.Item, len(ws))
	for i, w := range ws {
		out[i] = w.Item()
	}
	return out
}

func TestNewestMatchesApplyingEveryWrite(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewSource(7))
	for trial := 0; trial < 500; trial++ {
		log := writeLog(r)

		// Reference: every write applied one by one, in a random order.
		oneByOne := kvtest.NewMemoryStore()
		for _, i := range r.Perm(len(log)) {
			if _, err := oneByOne.Apply(ctx, items(log[i:i+1])); err != nil {
				t.Fatal(err)
			}
		}

		// The consumer's way: a shuffled log cut into batches, each reduced
		// by Newest and applied in one call.
		shuffled := append([]kv.Write(nil), log...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		batched := kvtest.NewMemoryStore()
		for rest := shuffled; len(rest) > 0; {
			n := min(len(rest), 1+r.Intn(len(log)))
			newest := kv.Newest(rest[:n])
			seen := make(map[string]bool)
			for _, w := range newest {
				if seen[w.Key] {
					t.Fatalf("trial %d: Newest returned key %q twice", trial, w.Key)
				}
				seen[w.Key] = true
			}
			if _, err := batched.Apply(ctx, items(newest)); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}

		// And what the versions say the end state must be.
		want := make(map[string]kv.Item)
		for _, w := range log {
			if cur, ok := want[w.Key]; !ok || cur.Version.Less(w.Version) {
				want[w.Key] = w.Item()
			}
		}

		if got := oneByOne.Snapshot(); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: one by one gave %v, want %v", trial, got, want)
		}
		if got := batched.Snapshot(); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: batches through Newest gave %v, want %v\nlog %v", trial, got, want, log)
		}
	}
}
