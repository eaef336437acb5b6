package load

import (
	"math"
	"slices"
	"time"
)

// Second is the traffic of one stream that fell due in one second of a run.
type Second struct {
	Sent      int `json:"sent"` // requests due (sent or not)
	Available int `json:"ok"`   // of them, answered as a working fleet answers
}

// Ratio is the second's availability; a second without traffic counts as
// available.
func (s Second) Ratio() float64 {
	if s.Sent == 0 {
		return 1
	}
	return float64(s.Available) / float64(s.Sent)
}

// PerSecond buckets the writes (writes true) or reads of outcomes by the
// second, counted from start, in which they fell due. The result runs from
// second 0 to the last second with traffic.
func PerSecond(outcomes []Outcome, start time.Time, writes bool) []Second {
	var secs []Second
	for _, o := range outcomes {
		if o.Op.IsWrite() != writes {
			continue
		}
		i := int(o.Intended.Sub(start) / time.Second)
		if i < 0 {
			continue
		}
		if i >= len(secs) {
			secs = append(secs, make([]Second, i+1-len(secs))...)
		}
		secs[i].Sent++
		if o.Available() {
			secs[i].Available++
		}
	}
	return secs
}

// Window is a run of consecutive seconds.
type Window struct {
	Start   int `json:"start"`   // first second
	Seconds int `json:"seconds"` // length; 0 for none
}

// LongestBelow returns the longest run of seconds whose availability is
// under min (the earliest of equally long ones).
func LongestBelow(secs []Second, min float64) Window {
	var best, cur Window
	for i, s := range secs {
		if s.Ratio() >= min {
			cur = Window{}
			continue
		}
		if cur.Seconds == 0 {
			cur.Start = i
		}
		cur.Seconds++
		if cur.Seconds > best.Seconds {
			best = cur
		}
	}
	return best
}

// FirstAtLeast returns the first second at or after from whose
// availability is at least min and that had traffic, or -1.
func FirstAtLeast(secs []Second, from int, min float64) int {
	for i := max(from, 0); i < len(secs); i++ {
		if secs[i].Sent > 0 && secs[i].Ratio() >= min {
			return i
		}
	}
	return -1
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value that at least p % of the values
// do not exceed. It returns 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Latency summarises a set of latencies.
type Latency struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Latencies summarises the latencies of the outcomes that keep returns true
// for.
func Latencies(outcomes []Outcome, keep func(Outcome) bool) Latency {
	var ds []time.Duration
	for _, o := range outcomes {
		if keep(o) {
			ds = append(ds, o.Latency)
		}
	}
	slices.Sort(ds)
	l := Latency{Count: len(ds), P50: Percentile(ds, 50), P99: Percentile(ds, 99)}
	if len(ds) > 0 {
		l.Max = ds[len(ds)-1]
	}
	return l
}

// Kinds counts the outcomes of one stream that were not available, by Kind.
func Kinds(outcomes []Outcome, writes bool) map[string]int {
	kinds := map[string]int{}
	for _, o := range outcomes {
		if o.Op.IsWrite() == writes && !o.Available() {
			kinds[o.Kind()]++
		}
	}
	return kinds
}
