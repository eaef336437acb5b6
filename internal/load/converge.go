package load

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// maxProblems bounds the failed verdicts a Convergence keeps as examples.
const maxProblems = 20

// Convergence is the result of reading every key of a ledger back.
type Convergence struct {
	// Converged: every key passed the check, and passed again when all were
	// read once more.
	Converged bool
	// Took is from the start of the check until the confirming pass began.
	Took time.Duration
	Keys int
	// Passed counts the keys of the last pass that passed, by Verdict.Why.
	Passed map[string]int
	// Lost keys do not reflect their highest acknowledged write; Corrupt
	// keys hold something no write explains though none was acknowledged;
	// Unverified keys could not be read at the end.
	Lost, Corrupt, Unverified int
	// Flapped counts keys that passed and then failed when read again.
	Flapped int
	// Problems are examples of the keys that failed at the end.
	Problems []Verdict
}

// Converge reads every key of l back through d until each passes
// l.Check or timeout has passed, reading parallel keys at a time and
// pausing between passes; once all pass it reads them all once more, and a
// key that fails then is read again until it passes or time is up.
func Converge(ctx context.Context, d Doer, l *Ledger, timeout time.Duration, parallel int) Convergence {
	start := time.Now()
	deadline := start.Add(timeout)
	keys := l.Keys()
	c := Convergence{Keys: len(keys)}
	last := make(map[string]Verdict, len(keys))
	pending, confirming := keys, false
	for {
		failed := checkAll(ctx, d, l, pending, parallel, last)
		if len(failed) == 0 {
			if confirming {
				c.Converged = true
				break
			}
			c.Took = time.Since(start)
			pending, confirming = keys, true
			continue
		}
		if confirming {
			c.Flapped += len(failed)
			confirming = false
		}
		pending = failed
		if !time.Now().Add(250*time.Millisecond).Before(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	c.Passed = map[string]int{}
	for _, k := range keys {
		v := last[k]
		switch {
		case v.OK:
			c.Passed[v.Why]++
			continue
		case v.Unread:
			c.Unverified++
		case v.Lost:
			c.Lost++
		default:
			c.Corrupt++
		}
		if len(c.Problems) < maxProblems {
			c.Problems = append(c.Problems, v)
		}
	}
	return c
}

// checkAll reads keys back, parallel at a time, records their verdicts in
// verdicts and returns the keys that failed.
func checkAll(ctx context.Context, d Doer, l *Ledger, keys []string, parallel int, verdicts map[string]Verdict) []string {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		work = make(chan string)
	)
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				v := checkOne(ctx, d, l, key)
				mu.Lock()
				verdicts[key] = v
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	var failed []string
	for _, k := range keys {
		if !verdicts[k].OK {
			failed = append(failed, k)
		}
	}
	return failed
}

// checkOne reads one key and checks it.
func checkOne(ctx context.Context, d Doer, l *Ledger, key string) Verdict {
	o := d.Do(ctx, Request{Op: OpGet, Key: key, Intended: time.Now()})
	switch {
	case o.Status == http.StatusOK && o.Code == "":
		return l.Check(key, Observation{Found: true, Value: o.ReadValue, Version: o.Version, Source: o.Source})
	case o.Status == http.StatusNotFound && o.Code == "not_found":
		return l.Check(key, Observation{})
	}
	return Verdict{Key: key, Unread: true, Why: "could not be read: " + o.Kind()}
}
