package autoscale

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// pauseTimeout bounds docker pause and docker unpause.
const pauseTimeout = time.Minute

// pausedService is the backlog phase's induced fault: the running
// containers of one service of the project frozen with docker pause (their
// processes stop, so no message is taken, applied or acknowledged) and
// later unpaused. It stands for consumers that fall behind: on a machine
// where the API is the bottleneck the consumers always keep up, and the
// scaler's backlog rule can be shown only on a backlog made this way.
//
// It is safe for concurrent use: the scaler's loop reads it (through
// heldFleet) while the test pauses and unpauses.
type pausedService struct {
	fleet   *scaler.Fleet
	service string

	resuming sync.Mutex
	mu       sync.Mutex
	paused   []scaler.Replica // the containers paused now
	ended    chan struct{}    // closed when the pause ends
	resumed  bool
	err      error // of the unpause
}

func newPausedService(fleet *scaler.Fleet, service string) *pausedService {
	return &pausedService{fleet: fleet, service: service}
}

// pause freezes every running container of the service, found as the
// scaler finds them (Compose's project and service labels), and returns
// them. A pause that failed part-way is undone before it returns.
func (p *pausedService) pause(ctx context.Context) ([]scaler.Replica, error) {
	reps, err := p.fleet.Replicas(ctx, p.service)
	if err != nil {
		return nil, err
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("no running %s container to pause", p.service)
	}
	// Recorded before docker pause runs: from the moment a container
	// freezes, docker ps no longer lists it as running, and the scaler,
	// asking meanwhile, must still count it.
	p.mu.Lock()
	if p.ended != nil {
		p.mu.Unlock()
		return nil, errors.New("the service was paused once already")
	}
	p.paused, p.ended = slices.Clone(reps), make(chan struct{})
	p.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	if _, err := p.fleet.Runner.Run(pctx, "docker", append([]string{"pause"}, ids(reps)...)...); err != nil {
		// Some may be frozen: thaw them now rather than leave the fleet
		// half paused for the rest of the run.
		return nil, errors.Join(fmt.Errorf("pausing the %s containers: %w", p.service, err), p.resume(ctx))
	}
	return reps, nil
}

// resume unpauses what pause froze. It is idempotent, so that a deferred
// call guards every way out of the run, and it runs under a context of its
// own: a run that was interrupted must still thaw the fleet. It returns
// the error of the first call.
func (p *pausedService) resume(ctx context.Context) error {
	// resuming serializes the calls; mu is not held while docker runs, so
	// that the scaler is not kept waiting on it meanwhile.
	p.resuming.Lock()
	defer p.resuming.Unlock()
	p.mu.Lock()
	if p.ended == nil || p.resumed {
		p.mu.Unlock()
		return p.err
	}
	paused := p.paused
	p.mu.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	_, err := p.fleet.Runner.Run(rctx, "docker", append([]string{"unpause"}, ids(paused)...)...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.err = fmt.Errorf("unpausing the %s containers: %w", p.service, err)
	}
	p.paused, p.resumed = nil, true
	close(p.ended)
	return p.err
}

// withPaused adds the paused containers to the running ones listed: a
// paused consumer is a replica that does no work, as a stalled one is, not
// a missing one (which the scaler would replace at once, to its minimum).
func (p *pausedService) withPaused(running []scaler.Replica) []scaler.Replica {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(running)
	for _, r := range p.paused {
		if !slices.ContainsFunc(out, func(x scaler.Replica) bool { return x.ID == r.ID }) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b scaler.Replica) int { return a.Number - b.Number })
	return out
}

// wait returns when the service is not paused (at once if it never was),
// or when ctx ends.
func (p *pausedService) wait(ctx context.Context) error {
	p.mu.Lock()
	ended, resumed := p.ended, p.resumed
	p.mu.Unlock()
	if ended == nil || resumed {
		return nil
	}
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ids(reps []scaler.Replica) []string {
	out := make([]string, len(reps))
	for i, r := range reps {
		out[i] = r.ID
	}
	return out
}

// heldFleet is the scaler's actuator in the test: the fleet's own, except
// for the paused service. Its paused containers count as its replicas, and
// a change of its size decided during the pause is carried out when the
// pause ends: Compose cannot change a service whose containers are paused
// (its "up" starts every existing container that is not running, and
// Docker refuses to start a paused one). The decision keeps the time the
// scaler took it; the wait shows in when the change was done.
type heldFleet struct {
	scaler.Actuator
	fault *pausedService
}

// Replicas implements scaler.Actuator.
func (h heldFleet) Replicas(ctx context.Context, service string) ([]scaler.Replica, error) {
	reps, err := h.Actuator.Replicas(ctx, service)
	if err != nil || service != h.fault.service {
		return reps, err
	}
	return h.fault.withPaused(reps), nil
}

// Scale implements scaler.Actuator.
func (h heldFleet) Scale(ctx context.Context, service string, current []scaler.Replica, n int) error {
	if service == h.fault.service {
		if err := h.fault.wait(ctx); err != nil {
			return fmt.Errorf("scaling %s to %d: the test's pause did not end: %w", service, n, err)
		}
	}
	return h.Actuator.Scale(ctx, service, current, n)
}
