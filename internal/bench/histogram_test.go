package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	// Every value maps to a bucket whose upper end is at or above it, and
	// the previous bucket's upper end is below it: buckets tile the range.
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 123456789, maxValue} {
		b := bucketOf(v)
		if b < 0 || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0,%d)", v, b, numBuckets)
		}
		if hi := bucketHigh(b); hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if b > 0 && bucketHigh(b-1) >= v {
			t.Errorf("value %d also fits bucket %d (upper end %d)", v, b-1, bucketHigh(b-1))
		}
	}
	for b := 1; b < numBuckets; b++ {
		if bucketHigh(b) <= bucketHigh(b-1) {
			t.Fatalf("bucket %d ends at %d, not above bucket %d (%d)", b, bucketHigh(b), b-1, bucketHigh(b-1))
		}
	}
}

// exactQuantile is the nearest-rank quantile of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted)) + 0.999999999)
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []time.Duration
	for range 100_000 {
		// Log-normal-ish latencies from 50µs to seconds.
		d := time.Duration(50_000 * (1 + rng.ExpFloat64()*rng.ExpFloat64()*40))
		h.Record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		got, want := h.Quantile(q), exactQuantile(all, q)
		if rel := float64(got-want) / float64(want); rel < 0 || rel > 1.0/subCount {
			t.Errorf("q%.3f = %v, exact %v: off by %.3f%%, want within [0, %.2f%%]", q, got, want, rel*100, 100.0/subCount)
		}
	}
	if h.Max() != all[len(all)-1] {
		t.Errorf("Max = %v, want %v", h.Max(), all[len(all)-1])
	}
	if h.Count() != uint64(len(all)) {
		t.Errorf("Count = %d, want %d", h.Count(), len(all))
	}
}

func TestSmallHistograms(t *testing.T) {
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 || empty.Max() != 0 {
		t.Fatalf("empty histogram: q99 %v mean %v max %v, want zeros", empty.Quantile(0.99), empty.Mean(), empty.Max())
	}
	var one Histogram
	one.Record(1234567 * time.Nanosecond)
	for _, q := range []float64{0.01, 0.5, 1} {
		if got := one.Quantile(q); got != 1234567 {
			t.Errorf("one sample: q%v = %v, want the sample exactly", q, got)
		}
	}
	var h Histogram
	for _, d := range []time.Duration{1, 2, 3, 4, 100} {
		h.Record(d)
	}
	if h.Quantile(0.5) != 3 || h.Quantile(0.8) != 4 || h.Quantile(0.81) != 100 || h.Mean() != 22 {
		t.Fatalf("q50 %v q80 %v q81 %v mean %v; want 3 4 100 22", h.Quantile(0.5), h.Quantile(0.8), h.Quantile(0.81), h.Mean())
	}
	var neg Histogram
	neg.Record(-time.Second)
	neg.Record(10 * time.Hour)
	if neg.Quantile(0.5) != 0 || neg.Max() != time.Duration(maxValue) {
		t.Fatalf("clamping: q50 %v max %v, want 0 and %v", neg.Quantile(0.5), neg.Max(), time.Duration(maxValue))
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var parts [4]Histogram
	var whole, merged Histogram
	for i := range 40_000 {
		d := time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
		parts[i%len(parts)].Record(d)
		whole.Record(d)
	}
	var empty Histogram
	merged.Merge(&empty)
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged.Summarize() != whole.Summarize() {
		t.Fatalf("merged %+v\nwhole  %+v", merged.Summarize(), whole.Summarize())
	}
	if merged.min != whole.min {
		t.Fatalf("merged min %d, whole %d", merged.min, whole.min)
	}
}

func TestSummaryInMilliseconds(t *testing.T) {
	var h Histogram
	h.Record(1500 * time.Microsecond)
	s := h.Summarize()
	if s.P50MS != 1.5 || s.MaxMS != 1.5 || s.MeanMS != 1.5 || s.Count != 1 {
		t.Fatalf("Summarize = %+v, want 1.5 ms everywhere", s)
	}
}
