#!/usr/bin/env bash
# Starts one CockroachDB node of the three-node cluster, advertising its
# service hostname so that the others and HAProxy can reach it.
set -euo pipefail
exec cockroach start \
	--certs-dir=/certs \
	--advertise-addr="$(hostname):26257" \
	--join=cockroach-1:26257,cockroach-2:26257,cockroach-3:26257 \
	--listen-addr=:26257 \
	--http-addr=:8080 \
	--cache=.15 \
	--max-sql-memory=.15 \
	--store=/cockroach/cockroach-data
