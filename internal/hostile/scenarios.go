package hostile

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

func urlQuery(s string) string { return url.QueryEscape(s) }

const mib = 1 << 20

// scenarios are the attacks, in order. The two that need the queue to grow
// pause the consumers, as a database outage does, and let them go at the
// end of the attack.
func (r *runner) scenarios() []scenario {
	return []scenario{
		{
			name: "escape-heavy backlog",
			what: fmt.Sprintf("%d PUTs of a 1 MiB value of '<' (a 6 MiB JSON body each), 8 at a time, behind paused consumers", r.o.BacklogWrites),
			run:  r.escapeHeavyBacklog,
		},
		{
			name:             "flood to the byte bound",
			what:             fmt.Sprintf("1 MiB writes from 16 connections behind paused consumers until the queue refuses them (at most %d)", r.o.FloodMax),
			queueFullAllowed: true,
			run:              r.flood,
		},
		{
			name: "bodies at the size limit",
			what: "3 rounds of 48 concurrent PUTs of ~8 MiB bodies (a 1 MiB value of control characters, escaped, and padding)",
			run:  r.maxBodies,
		},
		{
			name: "unknown and duplicate members",
			what: "16 PUTs carrying a 7 MiB unknown member; 16 PUTs naming key_name twice",
			run:  r.members,
		},
		{
			name: "huge query strings, headers and bodies",
			what: "32 GETs with a 100 KiB query string, 32 with a 64 KiB header, 8 PUTs of 9 MiB",
			run:  r.huge,
		},
		{
			name: "slow headers and bodies",
			what: "200 connections sending a header line every 2 s, 100 sending a 1 MiB body 1 KiB every 2 s",
			run:  r.slow,
		},
	}
}

func (r *runner) escapeHeavyBacklog(ctx context.Context, res *ScenarioResult) []Check {
	t := newTally()
	res.Attack = t
	value := strings.Repeat("<", mib)
	return r.withConsumersPaused(ctx, func() []Check {
		parallel(ctx, r.o.BacklogWrites, 8, nil, func(i int) {
			key := fmt.Sprintf("hostile/%s/backlog/%04d", r.runID, i)
			r.record(t, key, r.atk.do(ctx, http.MethodPut, "/", nil, putBody(key, value, 0)))
		})
		accepted := t.count(http.StatusAccepted, "")
		return []Check{check("backlog accepted", accepted > 0,
			"%d of %d accepted (the rest refused: %v)", accepted, t.Sent, t.ByAnswer)}
	})
}

func (r *runner) flood(ctx context.Context, res *ScenarioResult) []Check {
	t := newTally()
	res.Attack = t
	value := strings.Repeat("f", mib)
	var full atomic.Int64
	return r.withConsumersPaused(ctx, func() []Check {
		start := time.Now()
		parallel(ctx, r.o.FloodMax, 16, func() bool { return full.Load() >= 16 }, func(i int) {
			key := fmt.Sprintf("hostile/%s/flood/%05d", r.runID, i)
			a := r.atk.do(ctx, http.MethodPut, "/", nil, putBody(key, value, 0))
			if a.Code == "queue_full" {
				full.Add(1)
			}
			r.record(t, key, a)
		})
		return []Check{check("the byte bound answers 503 queue_full", full.Load() > 0,
			"%d writes accepted, then %d refused as queue_full, in %s", t.count(http.StatusAccepted, ""), full.Load(),
			time.Since(start).Round(time.Second))}
	})
}

func (r *runner) maxBodies(ctx context.Context, res *ScenarioResult) []Check {
	t := newTally()
	res.Attack = t
	value := strings.Repeat("\x01", mib) // escaped by encoding/json as \u0001: 6 MiB
	for round := range 3 {
		parallel(ctx, 48, 48, nil, func(i int) {
			key := fmt.Sprintf("hostile/%s/max/%d-%02d", r.runID, round, i)
			r.record(t, key, r.atk.do(ctx, http.MethodPut, "/", nil, putBody(key, value, 8*mib-6*mib-2048)))
		})
	}
	unexpected := t.Sent - t.count(http.StatusAccepted, "") - t.count(http.StatusServiceUnavailable, "overloaded")
	return []Check{check("accepted or shed, nothing else", unexpected == 0,
		"%d answers other than 202 or 503 overloaded: %v", unexpected, t.ByAnswer)}
}

func (r *runner) members(ctx context.Context, res *ScenarioResult) []Check {
	t := newTally()
	res.Attack = t
	parallel(ctx, 16, 8, nil, func(i int) {
		key := fmt.Sprintf("hostile/%s/unknown/%02d", r.runID, i)
		r.record(t, key, r.atk.do(ctx, http.MethodPut, "/", nil, putBody(key, "v", 7*mib)))
	})
	unknownOK := t.count(http.StatusAccepted, "")
	parallel(ctx, 16, 8, nil, func(i int) {
		body := fmt.Sprintf(`{"key_name":"hostile/%s/dup/%d","key_name":"other","key_value":"v"}`, r.runID, i)
		r.record(t, "", r.atk.do(ctx, http.MethodPut, "/", nil, []byte(body)))
	})
	return []Check{
		check("unknown members ignored", unknownOK == 16, "%d of 16 accepted", unknownOK),
		check("duplicate members refused", t.count(http.StatusBadRequest, "duplicate_member") == 16,
			"%d of 16 answered 400 duplicate_member", t.count(http.StatusBadRequest, "duplicate_member")),
	}
}

func (r *runner) huge(ctx context.Context, res *ScenarioResult) []Check {
	t := newTally()
	res.Attack = t
	longKey := strings.Repeat("q", 100<<10)
	parallel(ctx, 32, 8, nil, func(int) {
		r.record(t, "", r.atk.do(ctx, http.MethodGet, "/?key="+longKey, nil, nil))
	})
	big := http.Header{"X-Big": {strings.Repeat("h", 64<<10)}}
	parallel(ctx, 32, 8, nil, func(int) {
		r.record(t, "", r.atk.do(ctx, http.MethodGet, "/?key=k", big, nil))
	})
	parallel(ctx, 8, 8, nil, func(i int) {
		r.record(t, "", r.atk.do(ctx, http.MethodPut, "/", nil, putBody("k", strings.Repeat("b", 9*mib), 0)))
	})
	refused := t.count(http.StatusRequestURITooLong, "uri_too_long") + t.count(http.StatusBadRequest, "headers_too_large") +
		t.count(http.StatusRequestEntityTooLarge, "body_too_large")
	return []Check{check("refused at the edge", refused == t.Sent,
		"%d of %d refused with 414, 400 or 413: %v", refused, t.Sent, t.ByAnswer)}
}

func (r *runner) slow(ctx context.Context, res *ScenarioResult) []Check {
	hold := 30 * time.Second
	if r.o.Quick {
		hold = 20 * time.Second
	}
	var headers, bodies slowResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		bodies = slowClients(ctx, r.o.API, 100, true, 2*time.Second, hold)
	}()
	headers = slowClients(ctx, r.o.API, 200, false, 2*time.Second, hold)
	<-done
	res.Slow = &headers
	return []Check{
		check("slow headers cut off", headers.ClosedByServer == headers.Connections,
			"%d of %d connections closed by the fleet, the longest held %s (slow bodies: %d of %d closed, longest %s)",
			headers.ClosedByServer, headers.Connections, headers.LongestHeld, bodies.ClosedByServer, bodies.Connections, bodies.LongestHeld),
	}
}

// record adds an attack's answer to t and remembers an acknowledged write
// for the final check.
func (r *runner) record(t *tally, key string, a answer) {
	t.add(a)
	if key != "" && a.Status == http.StatusAccepted && a.Version != "" {
		r.ackMu.Lock()
		r.acked[key] = a.Version
		r.ackMu.Unlock()
	}
}
