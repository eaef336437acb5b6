package bench

import (
	"context"
	"sync"
	"time"

	"github.com/kvfleet/kvfleet/internal/version"
)

// maxLagSamples bounds the raw lags a phase keeps for the report's
// distribution (a phase samples a few hundred writes).
const maxLagSamples = 5000

// lagSampler follows sampled writes until a read returns their version
// (or a newer one): the write → visible lag, from the 202 to that read.
// At most cap(slots) writes are followed at once; a sample offered while
// all are busy is skipped and counted.
type lagSampler struct {
	c     *Client
	poll  time.Duration
	limit time.Duration
	slots chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	hist Histogram
	res  LagResult
}

func newLagSampler(c *Client, concurrency int, poll, limit time.Duration) *lagSampler {
	return &lagSampler{c: c, poll: poll, limit: limit, slots: make(chan struct{}, concurrency)}
}

// sample starts following the write of ver to key, acknowledged at
// accepted.
func (l *lagSampler) sample(ctx context.Context, key, ver string, accepted time.Time) {
	want, err := version.Parse(ver)
	if err != nil {
		return
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.mu.Lock()
		l.res.Skipped++
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	l.res.Sampled++
	l.mu.Unlock()
	l.wg.Go(func() {
		defer func() { <-l.slots }()
		lag, ok := l.follow(ctx, key, want, accepted)
		l.mu.Lock()
		defer l.mu.Unlock()
		if ok {
			l.res.Visible++
			l.hist.Record(lag)
			if len(l.res.SamplesMS) < maxLagSamples {
				l.res.SamplesMS = append(l.res.SamplesMS, ms(lag))
			}
		} else {
			l.res.NotVisible++
		}
	})
}

// follow reads key every poll until it shows want or a newer version, for
// at most limit after accepted.
func (l *lagSampler) follow(ctx context.Context, key string, want version.Version, accepted time.Time) (time.Duration, bool) {
	deadline := accepted.Add(l.limit)
	for {
		a := l.c.Get(ctx, key)
		if a.Status == 200 {
			if v, err := version.Parse(a.Version); err == nil && v.Compare(want) >= 0 {
				return time.Since(accepted), true
			}
		}
		if time.Now().After(deadline) || sleep(ctx, l.poll) != nil {
			return 0, false
		}
	}
}

// wait waits for every write being followed and returns the result.
func (l *lagSampler) wait() LagResult {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	res := l.res
	res.Latency = l.hist.Summarize()
	return res
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
