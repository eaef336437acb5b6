package autoscale

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// backlogPhase is the part of the run that makes a backlog for the
// consumers' scaling to act on: the consumers paused (the induced fault),
// only writes sent through the API, until the write queue holds
// BacklogFactor × the target per paused consumer or PauseMax has passed,
// and then until the scaler has answered it (decided to scale the
// consumers up) or AnswerMax has passed.
// The API groups the writes that wait for a confirm into one message
// (queue.EncodeBatch), so the queue counts messages, not writes, and so
// does the bound: it is read from the same Prometheus query as the
// scaler's backlog signal.
type backlogPhase struct {
	pause  *pausedService
	prom   scaler.Querier
	query  string  // the scaler's backlog query, in messages
	target float64 // the scaler's backlog target, messages per consumer
	sched  Schedule
	since  func() float64
	log    *slog.Logger
	// writes starts the phase's traffic; Stop ends it.
	writes func() *saturation
	// answered reports whether the scaler has decided to scale the
	// consumers up at or after a time (seconds from the start, as since).
	answered func(from float64) bool
	// poll is how often the phase reads the backlog and looks for the
	// scaler's answer.
	poll time.Duration
}

// run runs the phase and reports what the fault did and whether the run
// was interrupted. The consumers are unpaused on every way out of it.
func (b backlogPhase) run(ctx context.Context) (Fault, bool) {
	var f Fault
	reps, err := b.pause.pause(ctx)
	if err != nil {
		f.Err = err.Error()
		return f, ctx.Err() != nil
	}
	f.PausedAt, f.Consumers = b.since(), len(reps)
	f.Bound = BacklogFactor * b.target * float64(len(reps))
	b.log.Info("backlog phase: consumers paused (induced fault)", "consumers", len(reps), "bound_messages", f.Bound, "at_most", b.sched.PauseMax)
	w := b.writes()
	watch, err := awaitBacklog(ctx, b.prom, b.query, f.Bound, b.sched.PauseMax, b.poll)
	interrupted := err != nil
	if !interrupted {
		// Unpaused, the consumers drain the backlog in a second or two, so
		// the scaler must look while the pause lasts. It looks once an
		// interval, and not at all while it carries out a change (an API
		// scale-up waits for the new replicas' healthchecks): a fixed hold
		// after the bound once ended before the scaler had seen the backlog
		// (docs/autoscaling.md, "What it showed", run 9). The pause is held
		// until the scaler has answered it; a scaler that never does still
		// fails the check, after AnswerMax.
		f.Answered, err = b.awaitAnswer(ctx, f.PausedAt)
		interrupted = err != nil
		f.AnsweredAt = b.since()
	}
	if err := b.pause.resume(ctx); err != nil {
		f.Err = err.Error()
	}
	f.ResumedAt = b.since()
	w.Stop()
	f.Peak, f.Reached, f.Unread = watch.Peak, watch.Reached, watch.Problem
	b.log.Info("backlog phase: consumers unpaused", "backlog_peak_messages", f.Peak, "bound_reached", f.Reached,
		"scaler_answered", f.Answered, "err", f.Err)
	return f, interrupted
}

// awaitAnswer waits until the scaler has decided to scale the consumers up
// at or after from, or AnswerMax has passed; only an interrupted run is an
// error.
func (b backlogPhase) awaitAnswer(ctx context.Context, from float64) (bool, error) {
	deadline := time.Now().Add(b.sched.AnswerMax)
	for !b.answered(from) {
		if !time.Now().Before(deadline) {
			return false, nil
		}
		if err := sleep(ctx, min(b.poll, time.Until(deadline))); err != nil {
			return false, err
		}
	}
	return true, nil
}

// faultNotes says, for the report, that the backlog was induced, and how.
func faultNotes(f Fault, clients int, target float64) []string {
	if f.PausedAt == 0 {
		if f.Err != "" {
			return []string{"the backlog phase did not run: " + f.Err}
		}
		return nil
	}
	end := "the bound was reached"
	if !f.Reached {
		end = "the time bound ended the wait for the backlog before the bound was reached"
	}
	if f.Answered {
		end += fmt.Sprintf(", and the pause was held until the scaler had decided to scale the consumers up (t=%.0f s)", f.AnsweredAt)
	} else {
		end += fmt.Sprintf(", and the pause was held until t=%.0f s without the scaler deciding to scale the consumers up", f.AnsweredAt)
	}
	notes := []string{fmt.Sprintf("induced fault: from t=%.0f s to t=%.0f s the test held the %d consumer containers paused (docker pause) while %d clients sent only writes, "+
		"standing for consumers that fall behind (on this machine the API is the bottleneck and the consumers keep up with any load sent through it); "+
		"the backlog the test read from Prometheus peaked at %.0f messages (bound %.0f: %d × the target of %.0f per consumer); %s. "+
		"The scaler counted the paused consumers as replicas, and a consumer change it decided during the pause was carried out when it ended (Compose cannot scale a service whose containers are paused)",
		f.PausedAt, f.ResumedAt, f.Consumers, clients, f.Peak, f.Bound, BacklogFactor, target, end)}
	if f.Unread != "" {
		notes = append(notes, "the backlog could not be read during the pause: "+f.Unread)
	}
	if f.Err != "" {
		notes = append(notes, "the induced fault failed: "+f.Err)
	}
	return notes
}

// backlogWatch is what the test read of the backlog during the pause.
type backlogWatch struct {
	Peak    float64 // messages
	Reached bool    // the backlog reached the bound
	// Problem is the last reason a read gave no number (a query error, no
	// samples), if no read ever did.
	Problem string
}

// awaitBacklog reads the write queue's backlog (query, in messages) from
// Prometheus every poll until it reaches bound or limit has passed; only
// an interrupted run (ctx ending) is an error. Prometheus sees RabbitMQ
// one scrape late, so the backlog is at least what it reads.
func awaitBacklog(ctx context.Context, q scaler.Querier, query string, bound float64, limit, poll time.Duration) (backlogWatch, error) {
	var w backlogWatch
	read := false
	deadline := time.Now().Add(limit)
	for {
		samples, err := q.Query(ctx, query)
		switch {
		case err != nil:
			w.Problem = err.Error()
		case len(samples) != 1:
			w.Problem = fmt.Sprintf("%d samples, want one", len(samples))
		default:
			read = true
			w.Peak = max(w.Peak, samples[0].Value)
		}
		if read {
			w.Problem = ""
		}
		if w.Peak >= bound {
			w.Reached = true
			return w, nil
		}
		if !time.Now().Before(deadline) {
			return w, nil
		}
		if err := sleep(ctx, min(poll, time.Until(deadline))); err != nil {
			return w, err
		}
	}
}
