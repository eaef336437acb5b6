package dashboard

// Scaler is what the scaler's own panels need: its metrics reach
// Prometheus only when it runs as a fleet service.
var Scaler = &Need{
	Query: `up{job="scaler"}`,
	Why: "no scaler target: the autoscaler is not running as a fleet service " +
		"(./monitor-scale.sh serves kvfleet_scaler_* on the host's 127.0.0.1:9102, which Prometheus does not scrape)",
}

func autoscalingBoard() Board {
	return Board{
		File:  "kvfleet-autoscaling.json",
		UID:   "kvfleet-autoscaling",
		Title: "kvfleet autoscaling",
		Description: "The autoscaler's decisions (kvfleet_scaler_*, docs/autoscaling.md) and the signals " +
			"it reads, as Prometheus sees them.",
		Rows: []Row{
			{Title: "Decisions", Panels: needing(Scaler,
				series("Replicas: current, desired, maximum", "short", 12, "Per service: running replicas at the last decision, the replicas it asked for, and the configured maximum.",
					q(`kvfleet_scaler_current_replicas`, "{{service}} current"),
					q(`kvfleet_scaler_desired_replicas`, "{{service}} desired"),
					q(`kvfleet_scaler_max_replicas`, "{{service}} max")),
				series("Decisions by reason", "short", 12, "Decisions per minute by service and reason (steady, tolerance, at_max, stabilizing, cooldown, metrics, ...).",
					q(`sum by (service, reason) (rate(kvfleet_scaler_decisions_total[$__rate_interval])) * 60`, "{{service}} {{reason}}")),
				series("API signals", "short", 8, "The API's signals per replica at each decision, and their targets.",
					q(`kvfleet_scaler_signal{service="api"}`, "{{signal}}"),
					q(`kvfleet_scaler_signal_target{service="api"}`, "{{signal}} target")),
				series("Consumer signals", "short", 8, "The consumers' signals at each decision (backlog per consumer, growth), and their targets.",
					q(`kvfleet_scaler_signal{service="consumer"}`, "{{signal}}"),
					q(`kvfleet_scaler_signal_target{service="consumer"}`, "{{signal}} target")),
				series("Decisions by direction", "short", 8, "Decisions per minute by service and direction (up, down, none), and whether the scaler reaches Prometheus (1) or holds (0).",
					q(`sum by (service, direction) (rate(kvfleet_scaler_decisions_total[$__rate_interval])) * 60`, "{{service}} {{direction}}"),
					q(`kvfleet_scaler_prometheus_up`, "prometheus reachable")),
			)},
			{Title: "Signals as Prometheus sees them", Panels: []Panel{
				series("Replicas running", "short", 8, "API and consumer replicas that Prometheus scrapes.",
					q(`count(up{job="api"} == 1)`, "api"),
					q(`count(up{job="consumer"} == 1)`, "consumer")),
				series("API CPU per replica", "short", 8, "Cores used per API replica (the scaler's target: 0.5 of --api-cpu-cores).",
					q(`avg(rate(process_cpu_seconds_total{job="api"}[$__rate_interval]) and on(instance) (up{job="api"} == 1))`, "cores per replica")),
				series("API requests in flight per replica", "short", 8, "Client requests in flight per API replica (the scaler's target: 10).",
					q(`avg(kvfleet_http_in_flight{job="api"})`, "in flight per replica")),
				series("Backlog per consumer", "short", 12, "Messages in kvfleet.writes per running consumer (the scaler's target: 500).",
					q(`(`+backlog+`) / count(up{job="consumer"} == 1)`, "backlog per consumer")),
				series("Consumer throughput", "ops", 12, "Queue messages the consumers settle per second (the unit of the backlog; a message carries one write or several).",
					q(`sum(rate(kvfleet_consumer_messages_total{job="consumer"}[$__rate_interval]))`, "completed")),
			}},
		},
	}
}
