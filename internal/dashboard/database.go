package dashboard

// postgresExporter is what the PostgreSQL panels need: the exporter runs
// in the postgres profile only.
var postgresExporter = &Need{
	Query: `up{job="postgres"}`,
	Why:   "no postgres-exporter target: the fleet runs the CockroachDB profile (its nodes are job cockroach)",
}

func databaseBoard() Board {
	db := `job="postgres",datname="kvfleet"`
	return Board{
		File:  "kvfleet-database.json",
		UID:   "kvfleet-database",
		Title: "kvfleet database",
		Description: "PostgreSQL, read by postgres-exporter as kvfleet_monitor (postgres profile), " +
			"and the database as the API and the consumers see it (either profile).",
		Rows: []Row{
			{Title: "PostgreSQL", Panels: needing(postgresExporter,
				number("Up", "short", "1 while the exporter can query PostgreSQL.", q(`max(pg_up{job="postgres"})`, "up")),
				number("Connections used", "percentunit", "Backends as a share of max_connections (alert above 80%).",
					q(`sum(pg_stat_database_numbackends{job="postgres"}) / max(pg_settings_max_connections{job="postgres"})`, "used")),
				number("Database size", "bytes", "Size of the kvfleet database.",
					q(`max(pg_database_size_bytes{`+db+`})`, "size")),
				number("Commits", "ops", "Transactions committed per second in kvfleet.",
					q(`sum(rate(pg_stat_database_xact_commit{`+db+`}[$__rate_interval]))`, "commits")),
				number("Rows written", "ops", "Rows inserted, updated and deleted per second in kvfleet.",
					q(`sum(rate(pg_stat_database_tup_inserted{`+db+`}[$__rate_interval])) + sum(rate(pg_stat_database_tup_updated{`+db+`}[$__rate_interval])) + sum(rate(pg_stat_database_tup_deleted{`+db+`}[$__rate_interval]))`, "rows")),
				number("Longest transaction", "s", "Age of the oldest open transaction in kvfleet.",
					q(`max(pg_stat_activity_max_tx_duration{`+db+`})`, "longest")),
				series("Connections by state", "short", 12, "Connections to kvfleet by state (the pools keep idle ones).",
					q(`sum by (state) (pg_stat_activity_count{`+db+`})`, "{{state}}")),
				series("Transactions", "ops", 12, "Commits and rollbacks per second in kvfleet.",
					q(`sum(rate(pg_stat_database_xact_commit{`+db+`}[$__rate_interval]))`, "commits"),
					q(`sum(rate(pg_stat_database_xact_rollback{`+db+`}[$__rate_interval]))`, "rollbacks")),
				series("Rows", "ops", 12, "Rows per second in kvfleet, by what happened to them.",
					q(`sum(rate(pg_stat_database_tup_inserted{`+db+`}[$__rate_interval]))`, "inserted"),
					q(`sum(rate(pg_stat_database_tup_updated{`+db+`}[$__rate_interval]))`, "updated"),
					q(`sum(rate(pg_stat_database_tup_deleted{`+db+`}[$__rate_interval]))`, "deleted"),
					q(`sum(rate(pg_stat_database_tup_fetched{`+db+`}[$__rate_interval]))`, "fetched")),
				series("Buffer cache hit ratio", "percentunit", 6, "Share of block reads served from shared_buffers.",
					q(`sum(rate(pg_stat_database_blks_hit{`+db+`}[$__rate_interval]))
  / (sum(rate(pg_stat_database_blks_hit{`+db+`}[$__rate_interval])) + sum(rate(pg_stat_database_blks_read{`+db+`}[$__rate_interval])))`, "hit ratio")),
				series("Locks", "short", 6, "Locks held in kvfleet, by mode.",
					q(`sum by (mode) (pg_locks_count{`+db+`})`, "{{mode}}")),
			)},
			{Title: "As the fleet sees it", Panels: []Panel{
				series("Statement latency (p99)", "s", 12, "99th percentile of the API's and consumers' statements, by operation (either profile).",
					q(quantile("0.99", "kvfleet_db_query_duration_seconds", "", "op"), "{{op}}")),
				series("Statements by result", "ops", 12, "Statements per second by operation and result (alert: KvfleetDatabaseErrors above 5% errors).",
					q(`sum by (op, result) (rate(kvfleet_db_query_duration_seconds_count[$__rate_interval]))`, "{{op}} {{result}}")),
			}},
		},
	}
}
