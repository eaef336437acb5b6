package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Doer makes one request; *Client is the real one.
type Doer interface {
	Do(ctx context.Context, r Request) Outcome
}

// Plan describes one run of open-loop traffic: requests are sent on a fixed
// schedule whatever the answers take, so a slow or failing fleet cannot
// slow the client down and hide its own unavailability.
type Plan struct {
	Keys      []string // the key space; every request picks one
	WriteRate int      // writes per second (0: none)
	ReadRate  int      // reads per second (0: none)
	// DeleteFraction of the writes are deletes, the rest puts.
	DeleteFraction float64
	// ValueBytes pads every put's value to at least this size.
	ValueBytes int
	// Tag starts every value a put sends, followed by the write's sequence
	// number: values are unique within a run, so a value read back names the
	// write that stored it. Runs whose results are compared must use
	// different tags.
	Tag string
	// MaxInFlight bounds the requests of each stream waiting for an answer;
	// a request that falls due while that many wait is not sent and is
	// recorded as FailClientLimit.
	MaxInFlight int
	// MaxDuration ends the run by itself; with the rates it also bounds the
	// number of requests.
	MaxDuration time.Duration
	// Sequential writes put every key of Keys once, in order, and then the
	// writes end (seeding a key space). Reads, if any, go on.
	Sequential bool
	// Seed makes the choice of keys and operations repeatable.
	Seed uint64
}

func (p Plan) validate() error {
	var problems []string
	if len(p.Keys) == 0 {
		problems = append(problems, "no keys")
	}
	if p.WriteRate < 0 || p.ReadRate < 0 || p.WriteRate+p.ReadRate == 0 {
		problems = append(problems, fmt.Sprintf("rates %d writes/s and %d reads/s", p.WriteRate, p.ReadRate))
	}
	if p.DeleteFraction < 0 || p.DeleteFraction > 1 {
		problems = append(problems, fmt.Sprintf("delete fraction %v outside [0,1]", p.DeleteFraction))
	}
	if p.MaxInFlight <= 0 {
		problems = append(problems, "max in flight must be positive")
	}
	if p.MaxDuration <= 0 {
		problems = append(problems, "max duration must be positive")
	}
	if p.Tag == "" {
		problems = append(problems, "no tag")
	}
	if len(problems) > 0 {
		return fmt.Errorf("load: bad plan: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Run is traffic being generated. Stop or Wait ends it and returns every
// outcome.
type Run struct {
	start time.Time
	stop  chan struct{}
	once  sync.Once
	// pacers are the two schedule loops; requests are the requests in
	// flight. Both are waited for before the outcomes are returned.
	pacers   sync.WaitGroup
	requests sync.WaitGroup

	mu       sync.Mutex
	outcomes []Outcome
}

// Start begins the traffic of p. Requests run under ctx (cancelling it
// aborts those in flight); the run ends when Stop is called, when
// p.MaxDuration has passed, or, with Sequential and no reads, when every
// key was written.
func Start(ctx context.Context, d Doer, p Plan) (*Run, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	r := &Run{start: time.Now(), stop: make(chan struct{})}
	if p.WriteRate > 0 {
		rng := rand.New(rand.NewPCG(p.Seed, 1))
		count := budget(p.WriteRate, p.MaxDuration)
		if p.Sequential {
			count = min(count, len(p.Keys))
		}
		next := func(i int) Request {
			if p.Sequential {
				return Request{Op: OpPut, Key: p.Keys[i], Value: value(p.Tag, i, p.ValueBytes)}
			}
			key := p.Keys[rng.IntN(len(p.Keys))]
			if rng.Float64() < p.DeleteFraction {
				return Request{Op: OpDelete, Key: key}
			}
			return Request{Op: OpPut, Key: key, Value: value(p.Tag, i, p.ValueBytes)}
		}
		r.pace(ctx, d, p.WriteRate, count, p.MaxInFlight, next)
	}
	if p.ReadRate > 0 {
		rng := rand.New(rand.NewPCG(p.Seed, 2))
		count := budget(p.ReadRate, p.MaxDuration)
		if p.Sequential && p.WriteRate > 0 {
			// Seeding: reads last as long as the writes.
			count = min(count, len(p.Keys)*p.ReadRate/p.WriteRate)
		}
		next := func(int) Request { return Request{Op: OpGet, Key: p.Keys[rng.IntN(len(p.Keys))]} }
		r.pace(ctx, d, p.ReadRate, count, p.MaxInFlight, next)
	}
	return r, nil
}

// budget is how many requests a stream at rate per second sends in d.
func budget(rate int, d time.Duration) int {
	return int(int64(rate) * int64(d) / int64(time.Second))
}

// value is the unique value of the i-th write of a run tagged tag, padded
// to size bytes.
func value(tag string, i, size int) string {
	v := tag + ":" + strconv.Itoa(i)
	if pad := size - len(v); pad > 0 {
		v += ":" + strings.Repeat(".", pad-1)
	}
	return v
}

// pace starts one stream: count requests, one every 1/rate s from the
// run's start, each sent at once if fewer than limit of the stream are in
// flight, else recorded as not sent.
func (r *Run) pace(ctx context.Context, d Doer, rate, count, limit int, next func(int) Request) {
	interval := time.Second / time.Duration(rate)
	slots := make(chan struct{}, limit)
	r.pacers.Add(1)
	go func() {
		defer r.pacers.Done()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for i := range count {
			due := r.start.Add(time.Duration(i) * interval)
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-r.stop:
					return
				case <-ctx.Done():
					return
				}
			} else {
				// Behind schedule (a pause of this process): catch up at once.
				select {
				case <-r.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
			}
			req := next(i)
			req.Seq = uint64(i)
			req.Intended = due
			select {
			case slots <- struct{}{}:
				r.requests.Add(1)
				go func() {
					defer r.requests.Done()
					o := d.Do(ctx, req)
					<-slots
					r.record(o)
				}()
			default:
				r.record(Outcome{Request: req, Failure: FailClientLimit})
			}
		}
	}()
}

func (r *Run) record(o Outcome) {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, o)
	r.mu.Unlock()
}

// Started is when the schedule began: request i of a stream at rate n was
// due at Started + i/n seconds.
func (r *Run) Started() time.Time { return r.start }

// Stop ends the schedule, waits for the answers of the requests in flight
// (each bounded by the client's timeout) and returns every outcome.
func (r *Run) Stop() []Outcome {
	r.once.Do(func() { close(r.stop) })
	return r.Wait()
}

// Wait waits until the schedule ends by itself and every answer is in, and
// returns every outcome.
func (r *Run) Wait() []Outcome {
	r.pacers.Wait()
	r.requests.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcomes
}
