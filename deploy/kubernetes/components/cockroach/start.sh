#!/usr/bin/env bash
# Starts one CockroachDB node of the three-node cluster, advertising its
# service hostname so that the others and HAProxy can reach it. The cache
# and the SQL memory are fractions of the container's memory limit
# (docker-compose.yml), which CockroachDB reads from the cgroup: a quarter
# each, as Cockroach Labs recommends, leaves the rest for the Go runtime.
set -euo pipefail
exec cockroach start \
	--certs-dir=/certs \
	--advertise-addr="$(hostname):26257" \
	--join=cockroach-1:26257,cockroach-2:26257,cockroach-3:26257 \
	--listen-addr=:26257 \
	--http-addr=:8080 \
	--cache=.25 \
	--max-sql-memory=.25 \
	--store=/cockroach/cockroach-data
