package scaler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics is what the scaler exports about its decisions, so that the
// dashboards show them beside the load they answer.
type metrics struct {
	desired      *prometheus.GaugeVec
	current      *prometheus.GaugeVec
	minReplicas  *prometheus.GaugeVec
	maxReplicas  *prometheus.GaugeVec
	decisions    *prometheus.CounterVec
	actions      *prometheus.CounterVec
	signal       *prometheus.GaugeVec
	signalTarget *prometheus.GaugeVec
	prometheusUp prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		desired: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_desired_replicas",
			Help: "Replicas the last decision asked for, by service.",
		}, []string{"service"}),
		current: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_current_replicas",
			Help: "Running replicas at the last decision, by service.",
		}, []string{"service"}),
		minReplicas: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_min_replicas",
			Help: "The configured minimum replicas, by service.",
		}, []string{"service"}),
		maxReplicas: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_max_replicas",
			Help: "The configured maximum replicas, by service.",
		}, []string{"service"}),
		decisions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_scaler_decisions_total",
			Help: "Decisions, one per service per interval, by direction (up, down, none) and reason.",
		}, []string{"service", "direction", "reason"}),
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kvfleet_scaler_actions_total",
			Help: "Scale changes carried out, by service and result (ok, error).",
		}, []string{"service", "result"}),
		signal: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_signal",
			Help: "The per-replica value of each signal at the last decision (NaN without data).",
		}, []string{"service", "signal"}),
		signalTarget: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_signal_target",
			Help: "The target of each signal.",
		}, []string{"service", "signal"}),
		prometheusUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "kvfleet_scaler_prometheus_up",
			Help: "1 when the last interval's queries reached Prometheus, 0 when they did not (the sizes are held).",
		}),
	}
}
