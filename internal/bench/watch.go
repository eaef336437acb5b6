package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WriteQueue is the fleet's write queue (KVFLEET_QUEUE's default).
const WriteQueue = "kvfleet.writes"

// watchInterval is how often the watcher reads the write queue's depth.
const watchInterval = 200 * time.Millisecond

// depthWatch collects the write queue's depth from a watcher container
// (this program's "watch" command on the back network): a passive declare
// every watchInterval, exact at that moment, where the management API's
// figures are refreshed only every few seconds.
type depthWatch struct {
	docker *Docker
	id     string
	done   chan struct{}

	mu      sync.Mutex
	samples []DepthSample
	err     error
}

func (b *runner) startWatch(ctx context.Context) (*depthWatch, error) {
	id, err := b.docker.Run(ctx, "watch", b.helperArgs(nil, "watch", "-queue", WriteQueue,
		"-every", watchInterval.String(), "-for", b.o.MaxRun.String())...)
	if err != nil {
		return nil, fmt.Errorf("queue watcher: %w", err)
	}
	w := &depthWatch{docker: b.docker, id: id, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		err := b.docker.Follow(ctx, id, w.line)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := w.latest(); ok {
			return w, nil
		}
		if time.Now().After(deadline) {
			_, stderr, _ := b.docker.Logs(ctx, id)
			w.stop(ctx)
			return nil, fmt.Errorf("queue watcher: no depth after 30s: %s", strings.TrimSpace(lastLine(stderr)))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			w.stop(ctx)
			return nil, err
		}
	}
}

// line takes one "<unix ms> <ready>" line of the watcher.
func (w *depthWatch) line(s string) {
	msStr, nStr, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return
	}
	ms, err1 := strconv.ParseInt(msStr, 10, 64)
	n, err2 := strconv.Atoi(nStr)
	if err1 != nil || err2 != nil {
		return
	}
	w.mu.Lock()
	w.samples = append(w.samples, DepthSample{At: time.UnixMilli(ms), Ready: n})
	w.mu.Unlock()
}

func (w *depthWatch) latest() (DepthSample, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return DepthSample{}, false
	}
	return w.samples[len(w.samples)-1], true
}

func (w *depthWatch) snapshot() []DepthSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]DepthSample(nil), w.samples...)
}

// stop removes the watcher container, which ends the stream, and waits
// for the reader.
func (w *depthWatch) stop(ctx context.Context) {
	_ = w.docker.Remove(ctx, w.id)
	<-w.done
}

// waitBelow waits until the queue holds fewer than n ready messages, at
// most timeout, and returns how long it took.
func (w *depthWatch) waitBelow(ctx context.Context, n int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		if s, ok := w.latest(); ok && s.Ready < n && s.At.After(start) {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			s, _ := w.latest()
			return time.Since(start), fmt.Errorf("the write queue still holds %d messages after %v", s.Ready, timeout)
		}
		if err := sleep(ctx, watchInterval); err != nil {
			return time.Since(start), err
		}
	}
}
