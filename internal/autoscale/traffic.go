package autoscale

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvfleet/kvfleet/internal/load"
)

// maxFailures bounds how many failed requests a run keeps one by one; the
// counts are always complete.
const maxFailures = 10000

// tally counts the traffic per second of the run and keeps the failures
// and the latencies of what succeeded. It is safe for concurrent use.
type tally struct {
	start time.Time

	mu        sync.Mutex
	seconds   []Second
	failures  []Failure
	failed    int
	kinds     map[string]int
	latencies []time.Duration // of the successes, in the order they came
	latencyAt []float64       // when each was sent
}

func newTally(start time.Time) *tally { return &tally{start: start, kinds: map[string]int{}} }

// add counts one outcome in the second it was sent (due, for an open-loop
// request: a request the client could not send still counts then).
func (t *tally) add(o load.Outcome) {
	at := o.Sent
	if at.IsZero() {
		at = o.Intended
	}
	s := at.Sub(t.start).Seconds()
	i := max(int(s), 0)
	t.mu.Lock()
	defer t.mu.Unlock()
	if i >= len(t.seconds) {
		t.seconds = append(t.seconds, make([]Second, i+1-len(t.seconds))...)
	}
	t.seconds[i].Offered++
	if o.Available() {
		t.seconds[i].OK++
		t.latencies = append(t.latencies, o.Latency)
		t.latencyAt = append(t.latencyAt, s)
		return
	}
	t.seconds[i].Failed++
	t.failed++
	t.kinds[o.Kind()]++
	if len(t.failures) < maxFailures {
		t.failures = append(t.failures, Failure{T: round(s, 3), Op: o.Op.String(), Kind: o.Kind()})
	}
}

// latency summarises the successes sent in [from, to).
func (t *tally) latency(from, to float64) Latency {
	t.mu.Lock()
	var ds []time.Duration
	for i, at := range t.latencyAt {
		if at >= from && at < to {
			ds = append(ds, t.latencies[i])
		}
	}
	t.mu.Unlock()
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }
	l := Latency{Count: len(ds), P50: ms(load.Percentile(ds, 50)), P99: ms(load.Percentile(ds, 99))}
	if len(ds) > 0 {
		l.Max = ms(ds[len(ds)-1])
	}
	return l
}

// saturation is the load: Concurrency clients, each sending its next
// request as soon as the last one is answered, until Stop or its bound.
type saturation struct {
	stop    chan struct{}
	once    sync.Once
	clients sync.WaitGroup
}

// saturate starts the load. Each client writes (PUT) with probability
// writeFraction, else reads, a key chosen at random from keys; every
// outcome goes to t. maxDuration and maxRequests bound it whatever
// happens to Stop.
func saturate(ctx context.Context, d load.Doer, t *tally, o Options, keys []string, tag string, maxDuration time.Duration) *saturation {
	s := &saturation{stop: make(chan struct{})}
	deadline := time.Now().Add(maxDuration)
	// At most 20,000 requests per second of the bound, far above what a
	// fleet on one machine answers: a bound on the count, not a pace.
	remaining := int64(maxDuration/time.Second) * 20000
	var mu sync.Mutex
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		remaining--
		return remaining >= 0
	}
	for c := range o.Concurrency {
		rng := rand.New(rand.NewPCG(o.Seed, uint64(c)+100))
		s.clients.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-s.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if time.Now().After(deadline) || !take() {
					return
				}
				key := keys[rng.IntN(len(keys))]
				req := load.Request{Op: load.OpGet, Key: key, Intended: time.Now()}
				if rng.Float64() < o.WriteFraction {
					req.Op = load.OpPut
					req.Value = padded(tag+":"+strconv.Itoa(c)+":"+strconv.Itoa(i), o.ValueBytes)
				}
				t.add(d.Do(ctx, req))
			}
		})
	}
	return s
}

// Stop ends the load and waits for the answers in flight.
func (s *saturation) Stop() {
	s.once.Do(func() { close(s.stop) })
	s.clients.Wait()
}

func padded(v string, size int) string {
	if pad := size - len(v); pad > 0 {
		v += ":" + strings.Repeat(".", pad-1)
	}
	return v
}
