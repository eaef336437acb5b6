package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: every power of two is split into
// 2^subBits buckets, so a recorded value is off by less than 1/2^subBits
// (0.8 %), as in an HDR histogram with two significant digits.
const subBits = 7

const (
	subCount = 1 << subBits
	// maxValue bounds what a histogram holds (about 73 minutes in
	// nanoseconds); larger values are recorded as maxValue.
	maxValue   = int64(1)<<42 - 1
	numBuckets = (42 - subBits + 1) * subCount
)

// Histogram counts durations in log-linear buckets: constant memory
// whatever the number of samples, mergeable, with percentiles exact to
// within 0.8 %. The maximum and the mean are exact. The zero value is
// empty and ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// bucketOf returns the bucket that holds v (0 <= v <= maxValue): values
// below subCount have a bucket each; above, the top subBits+1 bits of v
// select the bucket within its power of two.
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketHigh returns the largest value that falls into bucket b.
func bucketHigh(b int) int64 {
	if b < subCount {
		return int64(b)
	}
	shift := b/subCount - 1
	mantissa := int64(b%subCount + subCount)
	return (mantissa+1)<<shift - 1
}

// Record adds one duration; a negative one counts as zero.
func (h *Histogram) Record(d time.Duration) {
	v := min(max(int64(d), 0), maxValue)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest sample, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the average sample, exactly; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank method:
// the smallest value that at least q of the samples do not exceed, given
// as the upper end of its bucket but never above the exact maximum or
// below the exact minimum. It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketHigh(b), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Summary is the digest of a histogram that results carry, in milliseconds.
type Summary struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summarize returns the digest of h.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count:  h.n,
		MeanMS: ms(h.Mean()),
		P50MS:  ms(h.Quantile(0.50)),
		P90MS:  ms(h.Quantile(0.90)),
		P99MS:  ms(h.Quantile(0.99)),
		P999MS: ms(h.Quantile(0.999)),
		MaxMS:  ms(h.Max()),
	}
}

// ms converts d to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
