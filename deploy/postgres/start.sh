#!/usr/bin/env bash
# Starts PostgreSQL for the "postgres" profile. On first start it creates
# the cluster with the kvfleet user as owner, password authentication
# (SCRAM) for every network connection, and the kvfleet database. It uses
# only initdb and postgres from PATH, so the official image and the Debian
# stand-in run it alike.
set -euo pipefail
: "${POSTGRES_PASSWORD:?}"
user=${POSTGRES_USER:-kvfleet}
db=${POSTGRES_DB:-kvfleet}
data=${PGDATA:-/var/lib/postgresql/data}

if [[ ! -s $data/PG_VERSION ]]; then
	pwfile=$(mktemp)
	printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb -D "$data" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$data/pg_hba.conf"
	printf 'CREATE DATABASE %s;\n' "$db" | postgres --single -D "$data" -j postgres >/dev/null
fi
exec postgres -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp \
	-c max_connections="${MAX_CONNECTIONS:-200}" -c shared_buffers=256MB
