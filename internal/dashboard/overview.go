package dashboard

// The queries the overview shares with other boards.
const (
	requestRate = `sum(rate(kvfleet_http_requests_total{job="api",route="/"}[$__rate_interval]))`
	errorRatio  = `(sum(rate(kvfleet_http_requests_total{job="api",route="/",code=~"5.."}[$__rate_interval])) or vector(0))
  / sum(rate(kvfleet_http_requests_total{job="api",route="/"}[$__rate_interval]))`
	backlog         = `max(rabbitmq_queue_messages_ready{queue="kvfleet.writes"}) + max(rabbitmq_queue_messages_unacked{queue="kvfleet.writes"})`
	deadLetterDepth = `max(rabbitmq_queue_messages_ready{queue="kvfleet.writes.dead"})`
)

// quantile is histogram_quantile(phi) of a histogram's rate, summed over
// replicas, by the given extra labels.
func quantile(phi, histogram, selector, by string) string {
	if by != "" {
		by = ", " + by
	}
	return "histogram_quantile(" + phi + ", sum by (le" + by + ") (rate(" + histogram + "_bucket" + selector + "[$__rate_interval])))"
}

func overview() Board {
	readSel := `{job="api",route="/",method="GET"}`
	writeSel := `{job="api",route="/",method=~"PUT|DELETE"}`
	return Board{
		File:  "kvfleet-overview.json",
		UID:   "kvfleet-overview",
		Title: "kvfleet overview",
		Description: "The fleet at a glance: API traffic, errors and latency; writes from acceptance " +
			"to the database; the queue and its dead letters; the cache.",
		Rows: []Row{
			{Title: "Service level", Panels: []Panel{
				number("Requests", "reqps", "Client requests per second at the API (route /).", q(requestRate, "requests")),
				number("5xx ratio", "percentunit", "Share of client requests answered with a 5xx.", q(errorRatio, "5xx")),
				number("Read p99", "s", "99th percentile of GET latency at the API.",
					q(quantile("0.99", "kvfleet_http_request_duration_seconds", readSel, ""), "read p99")),
				number("Write → apply p99", "s", "99th percentile of the time from a write's acceptance at the API to its database commit.",
					q(quantile("0.99", "kvfleet_write_apply_lag_seconds", `{job="consumer"}`, ""), "lag p99")),
				number("Write backlog", "short", "Messages in kvfleet.writes: ready plus delivered but unacknowledged.", q(backlog, "backlog")),
				number("Replicas up", "short", "API and consumer replicas that Prometheus scrapes.",
					q(`count(up{job="api"} == 1)`, "api"), q(`count(up{job="consumer"} == 1)`, "consumer")),
			}},
			{Title: "API", Panels: []Panel{
				series("Requests by route and code", "reqps", 12, "Requests per second by route template and status code.",
					q(`sum by (route, code) (rate(kvfleet_http_requests_total{job="api"}[$__rate_interval]))`, "{{route}} {{code}}")),
				series("Latency", "s", 12, "Client request latency at the API, reads (GET) and writes (PUT, DELETE: they wait for the broker's confirm).",
					q(quantile("0.5", "kvfleet_http_request_duration_seconds", readSel, ""), "read p50"),
					q(quantile("0.99", "kvfleet_http_request_duration_seconds", readSel, ""), "read p99"),
					q(quantile("0.5", "kvfleet_http_request_duration_seconds", writeSel, ""), "write p50"),
					q(quantile("0.99", "kvfleet_http_request_duration_seconds", writeSel, ""), "write p99")),
				series("Server errors", "percentunit", 8, "Share of client requests answered with a 5xx (alert: KvfleetAPIErrorRatioHigh above 5%).",
					q(errorRatio, "5xx ratio")),
				series("Requests in flight", "short", 8, "Client requests each API replica is working on (limit KVFLEET_MAX_IN_FLIGHT).",
					q(`sum by (instance) (kvfleet_http_in_flight{job="api"})`, "{{instance}}")),
				series("CPU", "short", 8, "CPU used by the API replicas and the consumers, in cores.",
					q(`sum by (job) (rate(process_cpu_seconds_total{job=~"api|consumer"}[$__rate_interval]))`, "{{job}}")),
			}},
			{Title: "Writes", Panels: []Panel{
				series("Writes accepted and applied", "ops", 8, "Writes confirmed by the broker (answered 202) and writes the consumers applied or found superseded.",
					q(`sum(rate(kvfleet_publish_total{job="api",result="confirmed"}[$__rate_interval]))`, "accepted"),
					q(`sum(rate(kvfleet_consumer_writes_total{job="consumer",result=~"applied|superseded"}[$__rate_interval]))`, "applied")),
				series("Publish results", "ops", 8, "Publishes to RabbitMQ by result; anything but confirmed is a 503 queue_unavailable to the client.",
					q(`sum by (result) (rate(kvfleet_publish_total{job="api"}[$__rate_interval]))`, "{{result}}")),
				series("Publish confirm latency", "s", 8, "Time from a write's publish call to the broker's confirm of the message carrying it (waiting for a free slot included).",
					q(quantile("0.5", "kvfleet_publish_confirm_duration_seconds", `{job="api"}`, ""), "p50"),
					q(quantile("0.99", "kvfleet_publish_confirm_duration_seconds", `{job="api"}`, ""), "p99")),
				series("Writes per message", "short", 8, "Writes the API replicas grouped into each published message: 1 while the broker keeps up, more while writes wait for a free slot (KVFLEET_PUBLISH_PIPELINE).",
					q(`sum(rate(kvfleet_publish_batch_size_sum{job="api"}[$__rate_interval])) / sum(rate(kvfleet_publish_batch_size_count{job="api"}[$__rate_interval]))`, "writes per message")),
				series("Consumer writes", "ops", 8, "Writes the consumers handled, by result (a queue message carries one write or several).",
					q(`sum by (result) (rate(kvfleet_consumer_writes_total{job="consumer"}[$__rate_interval]))`, "{{result}}")),
				series("Write → apply lag", "s", 8, "Time from a write's acceptance at the API to its database commit (alert: KvfleetWriteApplyLagHigh, p99 over 1 s).",
					q(quantile("0.5", "kvfleet_write_apply_lag_seconds", `{job="consumer"}`, ""), "p50"),
					q(quantile("0.99", "kvfleet_write_apply_lag_seconds", `{job="consumer"}`, ""), "p99")),
				series("Write queue backlog", "short", 8, "kvfleet.writes: messages no consumer has taken (ready) and taken but not yet acknowledged (unacked).",
					q(`max(rabbitmq_queue_messages_ready{queue="kvfleet.writes"})`, "ready"),
					q(`max(rabbitmq_queue_messages_unacked{queue="kvfleet.writes"})`, "unacked")),
				series("Dead letters", "short", 8, "Messages waiting in kvfleet.writes.dead, and the consumers' dead-lettering per second.",
					q(deadLetterDepth, "in kvfleet.writes.dead"),
					q(`sum(rate(kvfleet_consumer_messages_total{job="consumer",result="dead_lettered"}[$__rate_interval])) or vector(0)`, "dead-lettered per second")),
				series("Broker connections", "short", 8, "Processes holding a working RabbitMQ connection, and publishes waiting for their confirm.",
					q(`sum by (job) (kvfleet_broker_connected{job=~"api|consumer"})`, "{{job}} connected"),
					q(`sum(kvfleet_publish_in_flight{job="api"})`, "awaiting confirm")),
				series("Consumer batches", "s", 12, "Time to apply a batch (database, cache, acknowledgement).",
					q(quantile("0.5", "kvfleet_consumer_batch_duration_seconds", `{job="consumer"}`, ""), "p50"),
					q(quantile("0.99", "kvfleet_consumer_batch_duration_seconds", `{job="consumer"}`, ""), "p99")),
				series("Writes per consumer batch", "short", 12, "Writes the consumers apply in one statement (at most KVFLEET_BATCH_SIZE).",
					q(`sum(rate(kvfleet_consumer_batch_size_sum{job="consumer"}[$__rate_interval])) / sum(rate(kvfleet_consumer_batch_size_count{job="consumer"}[$__rate_interval]))`, "writes per batch")),
			}},
			{Title: "Cache and database", Panels: []Panel{
				series("Cache hit ratio", "percentunit", 8, "Share of the API's cache lookups that found the key.",
					q(`sum(rate(kvfleet_cache_lookups_total{job="api",result="hit"}[$__rate_interval]))
  / sum(rate(kvfleet_cache_lookups_total{job="api"}[$__rate_interval]))`, "hit ratio")),
				series("Cache lookups", "ops", 8, "The API's cache lookups by result.",
					q(`sum by (result) (rate(kvfleet_cache_lookups_total{job="api"}[$__rate_interval]))`, "{{result}}")),
				series("Cache repairs", "ops", 8, "Applied writes whose cache update failed and whose keys were marked stale, and cache entries repaired since.",
					q(`sum(rate(kvfleet_cache_marked_stale_total{job="consumer"}[$__rate_interval]))`, "marked stale"),
					q(`sum(rate(kvfleet_cache_repaired_total{job="consumer"}[$__rate_interval]))`, "repaired")),
				series("Reads from the database", "ops", 8, "Reads the API answered from the database, by reason.",
					q(`sum by (reason) (rate(kvfleet_read_fallbacks_total{job="api"}[$__rate_interval]))`, "{{reason}}")),
				series("Cache round trips (p99)", "s", 8, "99th percentile of Redis round trips, by operation.",
					q(quantile("0.99", "kvfleet_cache_request_duration_seconds", "", "op"), "{{op}}")),
				series("Database statements (p99)", "s", 8, "99th percentile of database statements, by operation.",
					q(quantile("0.99", "kvfleet_db_query_duration_seconds", "", "op"), "{{op}}")),
			}},
		},
	}
}
