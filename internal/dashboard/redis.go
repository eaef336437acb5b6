package dashboard

func redisBoard() Board {
	master := `and on(instance) redis_instance_info{job="redis",role="master"}`
	return Board{
		File:  "kvfleet-redis.json",
		UID:   "kvfleet-redis",
		Title: "kvfleet Redis",
		Description: "The cache: one master, two replicas and three Sentinels (quorum 2), " +
			"read by redis-exporter (jobs redis and redis_sentinel).",
		Rows: []Row{
			{Title: "Topology", Panels: []Panel{
				number("Masters", "short", "Redis nodes whose role is master: 1 when healthy (alerts: KvfleetRedisNoMaster, KvfleetRedisSeveralMasters).",
					q(`count(redis_instance_info{job="redis",role="master"})`, "masters")),
				number("Nodes up", "short", "Redis data nodes that answer the exporter.",
					q(`sum(redis_up{job="redis"})`, "nodes up")),
				number("Replicas of the master", "short", "Replicas connected to the current master (2 when healthy).",
					q(`max(redis_connected_slaves{job="redis"} `+master+`)`, "replicas")),
				number("Sentinels OK", "short", "Sentinels that the Sentinels see as healthy (3 when healthy; failover needs 2).",
					q(`min(redis_sentinel_master_ok_sentinels{job="redis_sentinel"})`, "sentinels")),
				number("Replicas seen by Sentinel", "short", "Replicas the Sentinels consider usable for a failover.",
					q(`min(redis_sentinel_master_ok_slaves{job="redis_sentinel"})`, "replicas")),
				number("Master memory", "bytes", "Memory used by the master (maxmemory 128 MB, volatile-lru).",
					q(`max(redis_memory_used_bytes{job="redis"} `+master+`)`, "used")),
				series("Role by node", "short", 12, "2: master, 1: replica, no line: down. A failover shows as a replica rising to 2.",
					q(`max by (instance) (redis_instance_info{job="redis",role="master"}) * 2
  or max by (instance) (redis_instance_info{job="redis",role="slave"})`, "{{instance}}")),
				series("Replication offset behind the master", "bytes", 12, "How far each node's replication offset is behind the furthest one.",
					q(`scalar(max(redis_master_repl_offset{job="redis"})) - redis_master_repl_offset{job="redis"}`, "{{instance}}")),
			}},
			{Title: "Traffic and memory", Panels: []Panel{
				series("Commands", "ops", 8, "Commands processed per second by node.",
					q(`sum by (instance) (rate(redis_commands_processed_total{job="redis"}[$__rate_interval]))`, "{{instance}}")),
				series("Keyspace hit ratio", "percentunit", 8, "Share of key lookups that found the key, over all nodes.",
					q(`sum(rate(redis_keyspace_hits_total{job="redis"}[$__rate_interval]))
  / (sum(rate(redis_keyspace_hits_total{job="redis"}[$__rate_interval])) + sum(rate(redis_keyspace_misses_total{job="redis"}[$__rate_interval])))`, "hit ratio")),
				series("Connected clients", "short", 8, "Client connections by node (the replicas' connections to the master included).",
					q(`redis_connected_clients{job="redis"}`, "{{instance}}")),
				series("Memory", "bytes", 8, "Memory used by each node, and maxmemory.",
					q(`redis_memory_used_bytes{job="redis"}`, "{{instance}}"),
					q(`max(redis_memory_max_bytes{job="redis"})`, "maxmemory")),
				series("Keys", "short", 8, "Keys held by each node (entries and \"not found\" markers).",
					q(`sum by (instance) (redis_db_keys{job="redis"})`, "{{instance}}")),
				series("Expired and evicted keys", "ops", 8, "Keys removed per second because their TTL ended, or evicted at maxmemory.",
					q(`sum(rate(redis_expired_keys_total{job="redis"}[$__rate_interval]))`, "expired"),
					q(`sum(rate(redis_evicted_keys_total{job="redis"}[$__rate_interval]))`, "evicted")),
			}},
			{Title: "Sentinel", Panels: []Panel{
				series("What each Sentinel sees", "short", 12, "Per Sentinel: healthy Sentinels (itself included) and usable replicas of the master.",
					q(`redis_sentinel_master_ok_sentinels{job="redis_sentinel"}`, "{{instance}} sentinels"),
					q(`redis_sentinel_master_ok_slaves{job="redis_sentinel"}`, "{{instance}} replicas")),
				series("Sentinels up", "short", 12, "1 while the exporter can read the Sentinel.",
					q(`redis_up{job="redis_sentinel"}`, "{{instance}}")),
			}},
		},
	}
}
