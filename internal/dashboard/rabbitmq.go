package dashboard

func rabbitmqBoard() Board {
	return Board{
		File:  "kvfleet-rabbitmq.json",
		UID:   "kvfleet-rabbitmq",
		Title: "kvfleet RabbitMQ",
		Description: "The three-node RabbitMQ cluster and its quorum queue kvfleet.writes, " +
			"from each node's Prometheus endpoint (job rabbitmq, per-object metrics).",
		Rows: []Row{
			{Title: "Cluster", Panels: []Panel{
				number("Nodes up", "short", "RabbitMQ nodes that answer (the quorum queue needs 2 of 3).",
					q(`count(up{job="rabbitmq"} == 1)`, "nodes")),
				number("Memory alarms", "short", "Nodes above their memory watermark: they block every publisher.",
					q(`sum(rabbitmq_alarms_memory_used_watermark{job="rabbitmq"})`, "alarms")),
				number("Disk alarms", "short", "Nodes below their free-disk limit: they block every publisher.",
					q(`sum(rabbitmq_alarms_free_disk_space_watermark{job="rabbitmq"})`, "alarms")),
				number("Write backlog", "short", "Messages in kvfleet.writes, ready plus unacknowledged.", q(backlog, "backlog")),
				number("Dead letters", "short", "Messages waiting in kvfleet.writes.dead.", q(deadLetterDepth, "dead letters")),
				number("Consumers", "short", "Consumers subscribed to kvfleet.writes.",
					q(`max(rabbitmq_queue_consumers{queue="kvfleet.writes"})`, "consumers")),
			}},
			{Title: "Queues", Panels: []Panel{
				series("Messages by queue", "short", 12, "Ready and unacknowledged messages of each queue (the leader of a quorum queue reports it).",
					q(`max by (queue) (rabbitmq_queue_messages_ready{job="rabbitmq"})`, "{{queue}} ready"),
					q(`max by (queue) (rabbitmq_queue_messages_unacked{job="rabbitmq"})`, "{{queue}} unacked")),
				series("Message rates", "ops", 12, "Messages received from publishers, confirmed to them, delivered to consumers and acknowledged by them, per second, over the cluster.",
					q(`sum(rate(rabbitmq_global_messages_received_total{job="rabbitmq"}[$__rate_interval]))`, "received"),
					q(`sum(rate(rabbitmq_global_messages_confirmed_total{job="rabbitmq"}[$__rate_interval]))`, "confirmed"),
					q(`sum(rate(rabbitmq_global_messages_delivered_total{job="rabbitmq"}[$__rate_interval]))`, "delivered"),
					q(`sum(rate(rabbitmq_global_messages_acknowledged_total{job="rabbitmq"}[$__rate_interval]))`, "acknowledged")),
			}},
			{Title: "Nodes", Panels: []Panel{
				series("Memory", "bytes", 12, "Each node's resident memory and its memory watermark (half the container's limit).",
					q(`rabbitmq_process_resident_memory_bytes{job="rabbitmq"}`, "{{instance}}"),
					q(`max(rabbitmq_resident_memory_limit_bytes{job="rabbitmq"})`, "watermark")),
				series("Connections and channels", "short", 12, "Client connections and channels by node.",
					q(`sum by (instance) (rabbitmq_connections{job="rabbitmq"})`, "{{instance}} connections"),
					q(`sum by (instance) (rabbitmq_channels{job="rabbitmq"})`, "{{instance}} channels")),
				series("Node status", "short", 12, "1 while Prometheus can scrape the node (a node paused by pause_minority stops answering).",
					q(`up{job="rabbitmq"}`, "{{instance}}")),
				series("Free disk", "bytes", 12, "Free disk space each node sees.",
					q(`rabbitmq_disk_space_available_bytes{job="rabbitmq"}`, "{{instance}}")),
			}},
		},
	}
}
