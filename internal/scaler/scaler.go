package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Actuator counts and changes the replicas of a service; Fleet is the one
// that uses Docker Compose.
type Actuator interface {
	// Check reports whether the actuator can act (the Compose command
	// runs, the env file is there).
	Check(ctx context.Context) error
	Replicas(ctx context.Context, service string) ([]Replica, error)
	Scale(ctx context.Context, service string, current []Replica, n int) error
}

// Service is one scaled service: its Compose service name (also its
// Prometheus job), its policy and its signals.
type Service struct {
	Name    string
	Policy  Policy
	Sampler Sampler
}

// Services returns the fleet's scaled services as cfg sets them.
func Services(cfg Config) []Service {
	return []Service{
		{Name: "api", Policy: cfg.Policy("api"), Sampler: APISampler{Job: "api", Window: cfg.SignalWindow,
			CPUCores: cfg.APICPUCores, CPUTarget: cfg.APICPUTarget, InFlightTarget: cfg.APIInFlightTarget}},
		{Name: "consumer", Policy: cfg.Policy("consumer"), Sampler: ConsumerSampler{Job: "consumer", Queue: cfg.Queue,
			BacklogTarget: cfg.ConsumerBacklogTarget, GrowthWindow: cfg.GrowthWindow}},
	}
}

// Settings are what a Scaler works with.
type Settings struct {
	Services   []Service
	Prometheus Querier
	Fleet      Actuator
	// DryRun decides and logs but never calls Fleet.Scale.
	DryRun   bool
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// Observer, when set, is told of every decision and of every change
	// carried out, after they are logged: the autoscale test
	// (internal/autoscale) builds its timeline from them.
	Observer Observer
}

// Observer hears what a Scaler decides and does. Its methods are called
// from the Scaler's loop, one at a time, and must return quickly.
type Observer interface {
	// Decided is called once per service per interval.
	Decided(service string, d Decision)
	// Scaled is called after a change was carried out (err nil) or failed;
	// started is when it began.
	Scaled(service string, d Decision, started time.Time, err error)
}

// Scaler decides every interval, for every service, and acts.
type Scaler struct {
	Settings
	metrics *metrics
	history map[string]History
}

// ReasonReplicasUnknown is the hold when Docker could not say how many
// replicas run; Decide never gives it.
const ReasonReplicasUnknown Reason = "replicas_unknown"

// ErrActionFailed is what Step returns when a change could not be made
// (the log has the details).
var ErrActionFailed = errors.New("a scale change failed (see the log)")

// New returns a Scaler that exports its metrics to reg.
func New(s Settings, reg prometheus.Registerer) *Scaler {
	m := newMetrics(reg)
	for _, svc := range s.Services {
		m.minReplicas.WithLabelValues(svc.Name).Set(float64(svc.Policy.Min))
		m.maxReplicas.WithLabelValues(svc.Name).Set(float64(svc.Policy.Max))
	}
	return &Scaler{Settings: s, metrics: m, history: map[string]History{}}
}

// Check is the start-up check: Prometheus answers, every service has
// running replicas, and (unless in a dry run) the fleet can be changed.
// It also logs which signal queries have no data yet, which is normal
// for a fleet that just started but a mistake in a configuration that
// names the wrong job or queue.
func (s *Scaler) Check(ctx context.Context) error {
	if _, err := s.Prometheus.Query(ctx, "up"); err != nil {
		return fmt.Errorf("prometheus does not answer (is the fleet up? ./start.sh; else set KVFLEET_SCALER_PROMETHEUS_URL): %w", err)
	}
	for _, svc := range s.Services {
		reps, err := s.Fleet.Replicas(ctx, svc.Name)
		if err != nil {
			return err
		}
		if len(reps) == 0 {
			return fmt.Errorf("service %q has no running replicas: start the fleet (./start.sh), or set KVFLEET_PROJECT to the project that runs it", svc.Name)
		}
		for _, q := range svc.Sampler.Queries() {
			samples, err := s.Prometheus.Query(ctx, q)
			if err != nil || len(samples) == 0 {
				s.Logger.Warn("no data yet for a signal query", "scaling", svc.Name, "query", q, "err", err)
			}
		}
	}
	if s.DryRun {
		return nil
	}
	return s.Fleet.Check(ctx)
}

// Run decides at once and then every interval until ctx ends. A failed
// change is logged and retried after the cooldown, if still wanted.
func (s *Scaler) Run(ctx context.Context) {
	ticker := time.NewTicker(s.Interval)
	defer ticker.Stop()
	for {
		_ = s.Step(ctx) // logged in Step
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Step takes one decision for every service, logs it on one line,
// exports it and, unless in a dry run, carries it out.
func (s *Scaler) Step(ctx context.Context) error {
	var failed, unreachable bool
	for _, svc := range s.Services {
		d, act, reps, down := s.decide(ctx, svc)
		unreachable = unreachable || down
		if !act || s.DryRun || d.Desired == d.Current {
			continue
		}
		start := time.Now()
		err := s.Fleet.Scale(ctx, svc.Name, reps, d.Desired)
		if s.Observer != nil {
			s.Observer.Scaled(svc.Name, d, start, err)
		}
		if err != nil {
			failed = true
			s.metrics.actions.WithLabelValues(svc.Name, "error").Inc()
			s.Logger.Error("scale change failed", "scaling", svc.Name, "change", changeText(d), "err", err)
			continue
		}
		s.metrics.actions.WithLabelValues(svc.Name, "ok").Inc()
		s.Logger.Info("scaled", "scaling", svc.Name, "change", changeText(d), "took", time.Since(start).Round(time.Millisecond).String())
	}
	if unreachable {
		s.metrics.prometheusUp.Set(0)
	} else {
		s.metrics.prometheusUp.Set(1)
	}
	if failed {
		return ErrActionFailed
	}
	return nil
}

// decide observes a service and applies the rule; act is false when the
// replicas could not be counted. unreachable reports a Prometheus outage.
func (s *Scaler) decide(ctx context.Context, svc Service) (d Decision, act bool, reps []Replica, unreachable bool) {
	reps, err := s.Fleet.Replicas(ctx, svc.Name)
	if err != nil {
		s.metrics.decisions.WithLabelValues(svc.Name, string(None), string(ReasonReplicasUnknown)).Inc()
		s.Logger.Error("hold", "scaling", svc.Name, "reason", ReasonReplicasUnknown, "err", err)
		return Decision{}, false, nil, false
	}
	o := Observation{At: s.Now(), Current: len(reps)}
	if o.Signals, err = svc.Sampler.Sample(ctx, s.Prometheus, len(reps)); err != nil {
		o.Signals, o.Unavailable, unreachable = nil, err.Error(), true
	}
	d, s.history[svc.Name] = Decide(svc.Policy, s.history[svc.Name], o)
	s.record(ctx, svc, d)
	if s.Observer != nil {
		s.Observer.Decided(svc.Name, d)
	}
	return d, true, reps, unreachable
}

// record logs the decision on one line and exports it.
func (s *Scaler) record(ctx context.Context, svc Service, d Decision) {
	m := s.metrics
	m.current.WithLabelValues(svc.Name).Set(float64(d.Current))
	m.desired.WithLabelValues(svc.Name).Set(float64(d.Desired))
	m.decisions.WithLabelValues(svc.Name, string(d.Direction()), string(d.Reason)).Inc()
	for _, sig := range d.Signals {
		v := sig.Value
		if sig.State != SignalOK {
			v = math.NaN()
		}
		m.signal.WithLabelValues(svc.Name, sig.Name).Set(v)
		m.signalTarget.WithLabelValues(svc.Name, sig.Name).Set(sig.Target)
	}
	msg := "hold"
	switch d.Direction() {
	case Up:
		msg = "scale up"
	case Down:
		msg = "scale down"
	}
	attrs := []any{"scaling", svc.Name, "change", changeText(d), "current", d.Current, "desired", d.Desired,
		"reason", d.Reason, "signals", d.SignalSummary(), "recommendation", d.Recommendation}
	if d.Detail != "" {
		attrs = append(attrs, "detail", d.Detail)
	}
	if s.DryRun {
		attrs = append(attrs, "dry_run", true)
	}
	level := slog.LevelInfo
	if d.Reason == ReasonPrometheusDown || d.Reason == ReasonMissingData || d.Reason == ReasonPartialData {
		level = slog.LevelWarn
	}
	s.Logger.Log(ctx, level, msg, attrs...)
}

func changeText(d Decision) string { return fmt.Sprintf("%d→%d", d.Current, d.Desired) }
