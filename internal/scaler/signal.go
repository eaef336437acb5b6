package scaler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Querier runs an instant PromQL query; Prometheus satisfies it.
type Querier interface {
	Query(ctx context.Context, query string) ([]Sample, error)
}

// Sampler turns what Prometheus knows about a service into its signals.
// It returns an error wrapping ErrUnreachable when Prometheus could not be
// asked; a query without data is a missing signal, not an error.
type Sampler interface {
	Sample(ctx context.Context, q Querier, current int) ([]Signal, error)
	// Queries lists the PromQL the sampler runs, for the start-up log and
	// for dashboards that want to show the same numbers.
	Queries() []string
}

// APISampler reads the API replicas' load: CPU, and requests in flight as
// the second signal. Both are averages over the replicas that Prometheus
// scrapes (job Job in deploy/prometheus/prometheus.yml).
type APISampler struct {
	Job string
	// Window is the range of rate() and avg_over_time(): short enough to
	// see a load step within the 30 s the scaler has to react (with a 5 s
	// scrape interval, 20 s holds four samples).
	Window time.Duration
	// CPUCores is one replica's CPU in cores: its container's quota, or 1
	// when it has none (the fleet sets none), so that the CPU signal is a
	// fraction of what a replica can use.
	CPUCores  float64
	CPUTarget float64 // fraction of CPUCores
	// InFlightTarget is the requests in flight per replica to aim for
	// (kvfleet_http_in_flight); 0 turns the signal off.
	InFlightTarget float64
}

func (a APISampler) cpuQuery() string {
	// A replica that has gone keeps a rate for one window after its last
	// scrape; "and up == 1" drops it at once.
	return fmt.Sprintf(`avg(rate(process_cpu_seconds_total{job=%q}[%s]) and on(instance) (up{job=%q} == 1))`,
		a.Job, promDuration(a.Window), a.Job)
}

func (a APISampler) inFlightQuery() string {
	// The gauge is instantaneous; its average over the window smooths the
	// scrape-to-scrape noise.
	return fmt.Sprintf(`avg(avg_over_time(kvfleet_http_in_flight{job=%q}[%s]))`, a.Job, promDuration(a.Window))
}

// Queries lists the queries of Sample.
func (a APISampler) Queries() []string {
	if a.InFlightTarget == 0 {
		return []string{a.cpuQuery()}
	}
	return []string{a.cpuQuery(), a.inFlightQuery()}
}

// Sample returns the signals "cpu" (fraction of CPUCores per replica) and
// "in_flight" (requests per replica).
func (a APISampler) Sample(ctx context.Context, q Querier, _ int) ([]Signal, error) {
	cores, cpuNote, err := one(ctx, q, a.cpuQuery())
	if err != nil {
		return nil, err
	}
	signals := []Signal{{Name: "cpu", Value: cores / a.CPUCores, Target: a.CPUTarget, State: stateOf(cpuNote), Note: cpuNote}}
	if a.InFlightTarget > 0 {
		inFlight, note, err := one(ctx, q, a.inFlightQuery())
		if err != nil {
			return nil, err
		}
		signals = append(signals, Signal{Name: "in_flight", Value: inFlight, Target: a.InFlightTarget, State: stateOf(note), Note: note})
	}
	return signals, nil
}

// ConsumerSampler reads the write queue's backlog: messages ready plus
// unacknowledged (RabbitMQ's per-queue metrics, which the fleet enables
// with prometheus.return_per_object_metrics in deploy/rabbitmq/start.sh),
// and how fast it grows compared with how fast the consumers complete
// messages (kvfleet_consumer_messages_total of job Job).
type ConsumerSampler struct {
	Job   string
	Queue string
	// BacklogTarget is the messages per consumer to aim for. Each
	// consumer holds up to its prefetch (256) unacknowledged, so a target
	// below that would read a normal batch as a backlog.
	BacklogTarget float64
	// GrowthWindow is the range of deriv() and rate() for the growth
	// signal; longer than the API's window, since batches make the queue
	// depth jumpy.
	GrowthWindow time.Duration
}

// Only the node that leads a quorum queue exports its series; during a
// leader change two may, hence max, never sum, across nodes.
func (c ConsumerSampler) readyQuery() string {
	return fmt.Sprintf(`max(rabbitmq_queue_messages_ready{queue=%q})`, c.Queue)
}

func (c ConsumerSampler) unackedQuery() string {
	return fmt.Sprintf(`max(rabbitmq_queue_messages_unacked{queue=%q})`, c.Queue)
}

// BacklogQuery is the write queue's backlog in messages, ready plus
// unacknowledged, as the backlog signal counts it (before dividing by the
// consumers). The autoscale test watches it to bound the backlog it
// induces, so that the test and the scaler read the same number.
func (c ConsumerSampler) BacklogQuery() string {
	return c.readyQuery() + " + " + c.unackedQuery()
}

func (c ConsumerSampler) growthQuery() string {
	return fmt.Sprintf(`deriv((%s)[%s:5s])`, c.BacklogQuery(), promDuration(c.GrowthWindow))
}

func (c ConsumerSampler) completedQuery() string {
	return fmt.Sprintf(`sum(rate(kvfleet_consumer_messages_total{job=%q}[%s]))`, c.Job, promDuration(c.GrowthWindow))
}

// Queries lists the queries of Sample.
func (c ConsumerSampler) Queries() []string {
	return []string{c.readyQuery(), c.unackedQuery(), c.growthQuery(), c.completedQuery()}
}

// minCompletionRate is the completions per second below which the growth
// ratio means nothing (and would divide by almost zero).
const minCompletionRate = 1.0

// Sample returns the signals "backlog" (messages per consumer) and
// "growth" (arrivals over completions; 1 is a backlog that stays level).
// Growth asks for consumers only while messages wait (ready > 0), that is
// while the consumers cannot take more: when they keep up, their
// completion rate is the arrival rate and says nothing about their
// capacity, and the signal is idle.
func (c ConsumerSampler) Sample(ctx context.Context, q Querier, current int) ([]Signal, error) {
	ready, readyNote, err := one(ctx, q, c.readyQuery())
	if err != nil {
		return nil, err
	}
	unacked, unackedNote, err := one(ctx, q, c.unackedQuery())
	if err != nil {
		return nil, err
	}
	backlog := Signal{Name: "backlog", Value: (ready + unacked) / float64(max(current, 1)), Target: c.BacklogTarget}
	if readyNote != "" || unackedNote != "" {
		backlog = Signal{Name: "backlog", Target: c.BacklogTarget, State: SignalMissing, Note: joinNotes(readyNote, unackedNote)}
	}
	growth := Signal{Name: "growth", Target: 1}
	switch {
	case backlog.State == SignalMissing:
		growth.State, growth.Note = SignalMissing, "no queue depth"
	case ready < 1:
		growth.State, growth.Note = SignalIdle, "no message waits"
	default:
		slope, slopeNote, err := one(ctx, q, c.growthQuery())
		if err != nil {
			return nil, err
		}
		completed, completedNote, err := one(ctx, q, c.completedQuery())
		if err != nil {
			return nil, err
		}
		switch {
		case slopeNote != "" || completedNote != "":
			growth.State, growth.Note = SignalMissing, joinNotes(slopeNote, completedNote)
		case completed < minCompletionRate:
			// Stalled consumers: more of them will not help by this
			// measure; the backlog signal still applies.
			growth.State, growth.Note = SignalIdle, fmt.Sprintf("consumers complete %.2g/s", completed)
		default:
			growth.Value = (completed + slope) / completed
		}
	}
	return []Signal{backlog, growth}, nil
}

// one runs a query that should return a single number. No sample (or
// several, which a reduced query cannot give) is a note for the log; an
// unreachable Prometheus is an error.
func one(ctx context.Context, q Querier, query string) (float64, string, error) {
	samples, err := q.Query(ctx, query)
	switch {
	case errors.Is(err, ErrUnreachable):
		return 0, "", err
	case err != nil:
		return 0, err.Error(), nil
	case len(samples) == 0:
		return 0, "no samples", nil
	case len(samples) > 1:
		return 0, fmt.Sprintf("%d samples, want one", len(samples)), nil
	}
	return samples[0].Value, "", nil
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

func stateOf(note string) SignalState {
	if note != "" {
		return SignalMissing
	}
	return SignalOK
}

// promDuration prints d as PromQL wants it: whole seconds (20s, 60s).
func promDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
