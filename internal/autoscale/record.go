package autoscale

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/kvfleet/kvfleet/internal/scaler"
)

// Interval is one decision of the scaler for one service, as the scaler
// took it: what it saw and what it asked for. T is in seconds from the
// start of the run, on the scaler's own clock.
type Interval struct {
	T              float64
	Service        string
	Current        int
	Desired        int
	Recommendation int
	Reason         string
	// Signals holds the per-replica value of every signal that had data
	// (cpu in fractions of a core, in_flight in requests, backlog in
	// messages per consumer, growth as a ratio), by name.
	Signals map[string]float64
	// Summary is the signals as the scaler logs them ("cpu=0.2/0.5 …").
	Summary string
	Detail  string
}

// Change is a decision that changed a service's size, and how carrying it
// out went: Done is when the change was carried out or failed, Err why
// it failed.
type Change struct {
	Interval
	Done float64
	Err  string
}

// Up reports whether the change added replicas.
func (c Change) Up() bool { return c.Desired > c.Current }

// Second is the traffic whose requests were sent (or, for the open-loop
// trickle, fell due) in one second of the run.
type Second struct {
	Offered int
	OK      int
	Failed  int
}

// Failure is one request that did not get the answer a working fleet
// gives.
type Failure struct {
	T    float64 // when it was sent or fell due
	Op   string
	Kind string // load.Outcome.Kind
}

// Limits are the settings the checks measure against.
type Limits struct {
	Interval, Cooldown, DownWindow, SignalWindow, StepWindow time.Duration
	APIMin, ConsumerMin                                      int
	Tolerance                                                float64
	BacklogTarget                                            float64
}

// Fault is the backlog phase's induced fault: the consumers' containers
// paused (docker pause) while only writes flow, standing for consumers
// that fall behind. Times are seconds from the start of the run; PausedAt
// is 0 when no container was paused.
type Fault struct {
	PausedAt  float64
	ResumedAt float64
	Consumers int     // containers paused
	Bound     float64 // the backlog, in messages, at which the pause ends
	Peak      float64 // the largest backlog the test read during the pause, in messages
	Reached   bool    // the backlog reached Bound; else PauseMax ended the wait for it
	// Answered says that the scaler decided to scale the consumers up
	// during the pause, at AnsweredAt at the latest; else AnswerMax ended
	// the wait for it at AnsweredAt.
	Answered   bool
	AnsweredAt float64
	Unread     string // why the backlog could not be read, if it never could
	Err        string // a pause or an unpause that failed
}

// pausedDuring reports whether the consumers were paused at some time in
// [from, to).
func (f Fault) pausedDuring(from, to float64) bool {
	return f.PausedAt > 0 && f.PausedAt < to && (f.ResumedAt == 0 || f.ResumedAt > from)
}

// Record is what a run measured: the phases' boundaries (seconds from the
// start), every decision, every change, the traffic per second and every
// failed request. Evaluate checks it.
//
// The saturating load runs from StepAt to LoadEnd: mixed reads and writes
// until BacklogAt, then the backlog phase's writes with the consumers
// paused (Fault). BacklogAt is LoadEnd when that phase did not run.
type Record struct {
	Limits    Limits
	StepAt    float64
	BacklogAt float64
	LoadEnd   float64
	End       float64
	Fault     Fault
	Intervals []Interval
	Changes   []Change
	Seconds   []Second
	Failures  []Failure
}

// recorder is the scaler's Observer: it turns decisions and changes into
// a Record's Intervals and Changes, and knows the replicas of each service
// as the scaler last saw or made them.
type recorder struct {
	start time.Time

	mu        sync.Mutex
	intervals []Interval
	changes   []Change
	replicas  map[string]int
	pending   map[string]bool // a change decided and not yet carried out
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, replicas: map[string]int{}, pending: map[string]bool{}}
}

func (r *recorder) at(t time.Time) float64 { return t.Sub(r.start).Seconds() }

func interval(at float64, service string, d scaler.Decision) Interval {
	iv := Interval{
		T: at, Service: service, Current: d.Current, Desired: d.Desired, Recommendation: d.Recommendation,
		Reason: string(d.Reason), Signals: map[string]float64{}, Summary: d.SignalSummary(), Detail: d.Detail,
	}
	for _, s := range d.Signals {
		if s.State == scaler.SignalOK && !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			iv.Signals[s.Name] = s.Value
		}
	}
	return iv
}

// Decided implements scaler.Observer.
func (r *recorder) Decided(service string, d scaler.Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intervals = append(r.intervals, interval(r.at(d.At), service, d))
	r.replicas[service] = d.Current
	r.pending[service] = d.Desired != d.Current
}

// Scaled implements scaler.Observer.
func (r *recorder) Scaled(service string, d scaler.Decision, _ time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Change{Interval: interval(r.at(d.At), service, d), Done: r.at(time.Now())}
	if err != nil {
		c.Err = err.Error()
	} else {
		r.replicas[service] = d.Desired
	}
	r.changes = append(r.changes, c)
	r.pending[service] = false
}

// decidedUp reports whether the scaler decided to scale service up at or
// after from (seconds from the start).
func (r *recorder) decidedUp(service string, from float64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.intervals, func(iv Interval) bool {
		return iv.Service == service && iv.T >= from && iv.Desired > iv.Current
	})
}

// settled reports whether every service is at its minimum with no change
// under way.
func (r *recorder) settled(mins map[string]int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for svc, lo := range mins {
		if n, seen := r.replicas[svc]; !seen || n != lo || r.pending[svc] {
			return false
		}
	}
	return true
}

func (r *recorder) snapshot() ([]Interval, []Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.intervals), slices.Clone(r.changes)
}

// Point is one second of the timeline.
type Point struct {
	T                int      `json:"t_s"`
	APIReplicas      int      `json:"api_replicas"`
	ConsumerReplicas int      `json:"consumer_replicas"`
	APICPU           *float64 `json:"api_cpu"`       // cores per API replica
	APIInFlight      *float64 `json:"api_in_flight"` // requests in flight per API replica
	Backlog          *float64 `json:"backlog"`       // messages ready + unacknowledged in the write queue
	Growth           *float64 `json:"growth"`        // arrivals over completions while messages wait
	// ConsumersPaused marks the seconds of the backlog phase's induced
	// fault, in which the test held the consumers paused.
	ConsumersPaused bool `json:"consumers_paused,omitempty"`
	Offered         int  `json:"offered"`
	OK              int  `json:"ok"`
	Failed          int  `json:"failed"`
	// APIDecision and ConsumerDecision are the reasons of the decisions
	// taken in this second, if any ("metrics" for a change).
	APIDecision      string `json:"api_decision,omitempty"`
	ConsumerDecision string `json:"consumer_decision,omitempty"`
}

// Timeline folds the record into one point per second: the traffic of
// that second and, at its end, the replicas and the signals of the last
// decisions. cpuCores converts the CPU signal (a fraction of
// --api-cpu-cores) into cores.
func Timeline(r Record, cpuCores float64) []Point {
	n := int(math.Ceil(r.End))
	points := make([]Point, n)
	type event struct {
		t       float64
		service string
		n       int
		iv      *Interval
	}
	var events []event
	for i := range r.Intervals {
		iv := &r.Intervals[i]
		events = append(events, event{t: iv.T, service: iv.Service, n: iv.Current, iv: iv})
	}
	for _, c := range r.Changes {
		if c.Err == "" {
			events = append(events, event{t: c.Done, service: c.Service, n: c.Desired})
		}
	}
	slices.SortStableFunc(events, func(a, b event) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	replicas := map[string]int{}
	last := map[string]*Interval{}
	next := 0
	for i := range points {
		p := &points[i]
		p.T = i
		for ; next < len(events) && events[next].t < float64(i+1); next++ {
			e := events[next]
			replicas[e.service] = e.n
			if e.iv != nil {
				last[e.service] = e.iv
				if e.service == "api" {
					p.APIDecision = e.iv.Reason
				} else {
					p.ConsumerDecision = e.iv.Reason
				}
			}
		}
		p.APIReplicas, p.ConsumerReplicas = replicas["api"], replicas["consumer"]
		p.ConsumersPaused = r.Fault.pausedDuring(float64(i), float64(i+1))
		if iv := last["api"]; iv != nil {
			p.APICPU = scaled(iv.Signals, "cpu", cpuCores)
			p.APIInFlight = scaled(iv.Signals, "in_flight", 1)
		}
		if iv := last["consumer"]; iv != nil {
			// The signal is per consumer; the timeline shows the queue.
			p.Backlog = scaled(iv.Signals, "backlog", float64(max(iv.Current, 1)))
			p.Growth = scaled(iv.Signals, "growth", 1)
		}
		if i < len(r.Seconds) {
			s := r.Seconds[i]
			p.Offered, p.OK, p.Failed = s.Offered, s.OK, s.Failed
		}
	}
	return points
}

func scaled(signals map[string]float64, name string, by float64) *float64 {
	v, ok := signals[name]
	if !ok {
		return nil
	}
	v = round(v*by, 3)
	return &v
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
