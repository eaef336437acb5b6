package version_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvfleet/kvfleet/internal/version"
)

func TestCompareAndLess(t *testing.T) {
	tests := []struct {
		name string
		a, b version.Version
		want int
	}{
		{"zero equals zero", version.Version{}, version.Version{}, 0},
		{"equal", version.Version{HLC: 7, Node: 3}, version.Version{HLC: 7, Node: 3}, 0},
		{"lower hlc", version.Version{HLC: 6, Node: 9}, version.Version{HLC: 7, Node: 1}, -1},
		{"higher hlc", version.Version{HLC: 8, Node: 0}, version.Version{HLC: 7, Node: 9}, 1},
		{"same hlc lower node", version.Version{HLC: 7, Node: 1}, version.Version{HLC: 7, Node: 2}, -1},
		{"same hlc higher node", version.Version{HLC: 7, Node: 2}, version.Version{HLC: 7, Node: 1}, 1},
		{"zero below any issued", version.Version{}, version.Version{HLC: 1}, -1},
		{"hlc beats node even at extremes", version.Version{HLC: 1, Node: 0}, version.Version{HLC: 0, Node: math.MaxUint64}, 1},
		{"unsigned comparison of hlc", version.Version{HLC: 1 << 63}, version.Version{HLC: 1<<63 - 1}, 1},
		{"unsigned comparison of node", version.Version{HLC: 5, Node: 1 << 63}, version.Version{HLC: 5, Node: 1}, 1},
		{"max", version.Version{HLC: math.MaxUint64, Node: math.MaxUint64}, version.Version{HLC: math.MaxUint64, Node: math.MaxUint64 - 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
			if got := tt.a.Less(tt.b); got != (tt.want < 0) {
				t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
			}
			if got := tt.b.Less(tt.a); got != (tt.want > 0) {
				t.Errorf("%v.Less(%v) = %v, want %v", tt.b, tt.a, got, tt.want > 0)
			}
		})
	}
}

func TestIsZero(t *testing.T) {
	tests := []struct {
		v    version.Version
		want bool
	}{
		{version.Version{}, true},
		{version.Version{HLC: 1}, false},
		{version.Version{Node: 1}, false},
	}
	for _, tt := range tests {
		if got := tt.v.IsZero(); got != tt.want {
			t.Errorf("%#v.IsZero() = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// samples covers the corners of both fields.
var samples = []version.Version{
	{},
	{HLC: 1},
	{Node: 1},
	{HLC: 0x0123456789abcdef, Node: 0xfedcba9876543210},
	{HLC: math.MaxUint64, Node: math.MaxUint64},
	{HLC: 1 << 63, Node: 1<<63 - 1},
	version.Floor(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)),
}

func TestStringParseRoundTrip(t *testing.T) {
	for _, v := range samples {
		s := v.String()
		if len(s) != 2*version.Size {
			t.Errorf("%#v.String() = %q: %d characters, want %d", v, s, len(s), 2*version.Size)
		}
		if s != strings.ToLower(s) {
			t.Errorf("%#v.String() = %q, want lowercase", v, s)
		}
		got, err := version.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != v {
			t.Errorf("Parse(%q) = %#v, want %#v", s, got, v)
		}
	}
	if got, want := (version.Version{HLC: 0x10, Node: 0x2}).String(), "00000000000000100000000000000002"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	for _, v := range samples {
		b := v.Bytes()
		if len(b) != version.Size {
			t.Errorf("%#v.Bytes() has %d bytes, want %d", v, len(b), version.Size)
		}
		got, err := version.FromBytes(b)
		if err != nil {
			t.Fatalf("FromBytes(%x): %v", b, err)
		}
		if got != v {
			t.Errorf("FromBytes(%x) = %#v, want %#v", b, got, v)
		}
		prefix := []byte("prefix")
		appended := v.AppendBinary(prefix)
		if !bytes.Equal(appended[:len(prefix)], prefix) || !bytes.Equal(appended[len(prefix):], b) {
			t.Errorf("AppendBinary(%q) = %x, want prefix then %x", prefix, appended, b)
		}
	}
}

func randomVersion(r *rand.Rand) version.Version {
	// Mix full-range values with small ones so that equal HLCs (the node
	// tie-break) and equal versions both come up often.
	pick := func() uint64 {
		if r.Intn(2) == 0 {
			return uint64(r.Intn(3))
		}
		return r.Uint64()
	}
	return version.Version{HLC: pick(), Node: pick()}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestEncodingsOrderLikeCompare(t *testing.T) {
	r := rand.New(rand.NewSource(20240229))
	for i := 0; i < 20000; i++ {
		a, b := randomVersion(r), randomVersion(r)
		want := a.Compare(b)
		if got := sign(strings.Compare(a.String(), b.String())); got != want {
			t.Fatalf("strings order %v vs %v as %d, Compare says %d", a, b, got, want)
		}
		if got := bytes.Compare(a.Bytes(), b.Bytes()); got != want {
			t.Fatalf("bytes order %x vs %x as %d, Compare says %d", a.Bytes(), b.Bytes(), got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"short", strings.Repeat("0", 31)},
		{"long", strings.Repeat("0", 33)},
		{"not hex", strings.Repeat("g", 32)},
		{"hex prefix", "0x" + strings.Repeat("0", 30)},
		{"spaces", " " + strings.Repeat("0", 30) + " "},
		{"multibyte characters", strings.Repeat("é", 16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := version.Parse(tt.in)
			if !errors.Is(err, version.ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, %v; want an error wrapping ErrMalformed", tt.in, v, err)
			}
			if !v.IsZero() {
				t.Errorf("Parse(%q) returned %#v with its error, want the zero Version", tt.in, v)
			}
		})
	}
}

func TestFromBytesErrors(t *testing.T) {
	for _, n := range []int{0, 1, version.Size - 1, version.Size + 1, 32} {
		v, err := version.FromBytes(make([]byte, n))
		if !errors.Is(err, version.ErrMalformed) {
			t.Errorf("FromBytes(%d bytes) = %v, %v; want an error wrapping ErrMalformed", n, v, err)
		}
	}
	if _, err := version.FromBytes(nil); !errors.Is(err, version.ErrMalformed) {
		t.Errorf("FromBytes(nil) error = %v, want ErrMalformed", err)
	}
}

func TestFloor(t *testing.T) {
	at := time.Date(2025, 6, 1, 10, 30, 0, 123_456_789, time.UTC)
	floor := version.Floor(at)
	if got, want := floor.Time(), at.Truncate(time.Millisecond); !got.Equal(want) {
		t.Errorf("Floor(%v).Time() = %v, want %v", at, got, want)
	}

	tests := []struct {
		name  string
		now   time.Time
		calls int
		// wantAbove: every version issued at now orders at or above the floor.
		wantAbove bool
	}{
		{"issued at the same millisecond", at, 5, true},
		{"issued later", at.Add(time.Second), 5, true},
		{"issued in the millisecond before", at.Add(-time.Millisecond), 5, false},
		{"many issued in the millisecond before stay below", at.Add(-time.Millisecond), 1000, false},
		{"issued long before", at.Add(-24 * time.Hour), 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := version.NewClock(math.MaxUint64, func() time.Time { return tt.now })
			for i := 0; i < tt.calls; i++ {
				v := c.Next()
				if above := !v.Less(floor); above != tt.wantAbove {
					t.Fatalf("call %d: version %v at %v, at or above Floor(%v) = %v: %v, want %v", i, v, tt.now, at, floor, above, tt.wantAbove)
				}
			}
		})
	}
}

// scriptedNow returns the given times in turn, then repeats the last one.
func scriptedNow(times ...time.Time) func() time.Time {
	i := 0
	return func() time.Time {
		t := times[min(i, len(times)-1)]
		i++
		return t
	}
}

func TestClockNextStrictlyIncreasing(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	repeat := func(tm time.Time, n int) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = tm
		}
		return out
	}
	tests := []struct {
		name  string
		times []time.Time
		// followsWallClock: whether the version's time should equal the
		// reading of now at that call.
		followsWallClock bool
	}{
		{"still", repeat(base, 1000), false},
		{"forward", []time.Time{ms(0), ms(1), ms(2), ms(10), ms(1000), ms(1001)}, true},
		{"backwards", []time.Time{ms(100), ms(99), ms(50), ms(0), ms(-1000), ms(-1000), ms(101)}, false},
		{"backwards then far forward", []time.Time{ms(10), ms(5), ms(5), ms(20), ms(19), ms(21)}, false},
		{"more than the logical counter in one millisecond", repeat(base, 70000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := version.NewClock(4, scriptedNow(tt.times...))
			var prev version.Version
			for i, now := range tt.times {
				v := c.Next()
				if !prev.Less(v) {
					t.Fatalf("call %d (now %v): %v does not follow %v", i, now, v, prev)
				}
				if v.Node != 4 {
					t.Fatalf("call %d: node %d, want 4", i, v.Node)
				}
				if tt.followsWallClock && !v.Time().Equal(now) {
					t.Fatalf("call %d: version time %v, want the wall clock %v", i, v.Time(), now)
				}
				if v.Time().Before(now) {
					t.Fatalf("call %d: version time %v is behind the wall clock %v", i, v.Time(), now)
				}
				prev = v
			}
		})
	}
}

func TestClockBackwardsStaysAtHighWater(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := version.NewClock(1, scriptedNow(base.Add(time.Hour), base))
	first := c.Next()
	second := c.Next()
	if second.HLC != first.HLC+1 {
		t.Errorf("after the clock stepped back an hour: HLC %d, want the logical successor %d", second.HLC, first.HLC+1)
	}
}

func TestClockObserve(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		observed version.Version
	}{
		{"far in the future", version.Floor(base.Add(time.Hour))},
		{"same millisecond, higher logical", version.Version{HLC: version.Floor(base).HLC + 500, Node: 1}},
		{"same hlc, higher node", version.Version{HLC: version.Floor(base).HLC, Node: math.MaxUint64}},
		{"in the past", version.Floor(base.Add(-time.Hour))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := version.NewClock(1, func() time.Time { return base })
			before := c.Next()
			c.Observe(tt.observed)
			next := c.Next()
			if !tt.observed.Less(next) {
				t.Errorf("after Observe(%v), Next() = %v, want higher", tt.observed, next)
			}
			if !before.Less(next) {
				t.Errorf("after Observe(%v), Next() = %v, not above the earlier %v", tt.observed, next, before)
			}
			again := c.Next()
			if !next.Less(again) {
				t.Errorf("Next() = %v after %v", again, next)
			}
		})
	}
}

func TestClockConcurrentNextDistinct(t *testing.T) {
	const goroutines, perGoroutine = 8, 2000
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	tick := 0
	// The wall clock advances a millisecond every 100 readings and steps
	// back now and then, so every branch of Next races with the others.
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick++
		if tick%1000 == 0 {
			return base
		}
		return base.Add(time.Duration(tick/100) * time.Millisecond)
	}
	c := version.NewClock(2, now)
	results := make([][]version.Version, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]version.Version, perGoroutine)
			for i := range out {
				out[i] = c.Next()
				if i%10 == 0 {
					c.Observe(out[i])
				}
			}
			results[g] = out
		}()
	}
	wg.Wait()

	seen := make(map[version.Version]int, goroutines*perGoroutine)
	for g, out := range results {
		for i, v := range out {
			if i > 0 && !out[i-1].Less(v) {
				t.Fatalf("goroutine %d: %v after %v", g, v, out[i-1])
			}
			if other, dup := seen[v]; dup {
				t.Fatalf("version %v issued to goroutines %d and %d", v, other, g)
			}
			seen[v] = g
		}
	}
	if len(seen) != goroutines*perGoroutine {
		t.Fatalf("%d distinct versions, want %d", len(seen), goroutines*perGoroutine)
	}
}

func TestClocksOnDifferentNodesOrderByNode(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return at }
	low, high := version.NewClock(3, now), version.NewClock(7, now)
	if low.Node() != 3 || high.Node() != 7 {
		t.Fatalf("Node() = %d, %d; want 3, 7", low.Node(), high.Node())
	}
	for i := 0; i < 10; i++ {
		a, b := low.Next(), high.Next()
		if a.HLC != b.HLC {
			t.Fatalf("call %d: HLCs %d and %d differ at the same physical time", i, a.HLC, b.HLC)
		}
		if !a.Less(b) || a.Compare(b) != -1 || b.Compare(a) != 1 {
			t.Fatalf("call %d: %v (node 3) and %v (node 7) do not order by node", i, a, b)
		}
	}
}

func BenchmarkClockNext(b *testing.B) {
	c := version.NewClock(1, time.Now)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = c.Next()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = c.Next()
			}
		})
	})
}

var sinkString string

func BenchmarkVersionString(b *testing.B) {
	v := version.Version{HLC: 0x0123456789abcdef, Node: 42}
	b.ReportAllocs()
	for b.Loop() {
		sinkString = v.String()
	}
}

func BenchmarkVersionAppendBinary(b *testing.B) {
	v := version.Version{HLC: 0x0123456789abcdef, Node: 42}
	buf := make([]byte, 0, version.Size)
	b.ReportAllocs()
	b.SetBytes(version.Size)
	for b.Loop() {
		buf = v.AppendBinary(buf[:0])
	}
}
