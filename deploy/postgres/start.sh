#!/usr/bin/env bash
# Starts PostgreSQL for the "postgres" profile. It uses only initdb and
# postgres from PATH, so the official image and the Debian stand-in run it
# alike.
#
# Roles, least privilege first:
#   APP_USER (kvfleet_app)  what the API and the consumers log in as: may
#                           read and write the rows of the tables, nothing
#                           else (no DDL, not a superuser)
#   POSTGRES_USER (kvfleet) owns the database and its tables; the migrate
#                           job logs in as it to change the schema
#   postgres                the superuser, with no password: only a local
#                           `docker exec ... psql` (peer authentication)
#   MONITOR_USER            the metrics exporter's login (kvfleet_monitor),
#   (kvfleet_monitor)       when MONITOR_PASSWORD is set: member of
#                           pg_monitor (statistics and settings), reads no
#                           rows
# On first start it creates the cluster and the database. On every start,
# before the server accepts connections, it makes sure both login roles
# exist with the passwords from the environment (so a rotated password in
# .env takes effect, and a cluster made by an older version, whose
# superuser is kvfleet itself, gets the application role) and grants the
# application role its rights, also on tables that later migrations create
# (default privileges of the owner). Passwords never appear on a command
# line.
#
# Memory: SHARED_BUFFERS (128MB) plus a few MiB per connection for
# MAX_CONNECTIONS (100; the fleet's pools use 8 per API replica and per
# consumer) stays inside the container's limit (docker-compose.yml).
set -euo pipefail
: "${POSTGRES_PASSWORD:?}" "${APP_PASSWORD:?}"
owner=${POSTGRES_USER:-kvfleet}
app=${APP_USER:-kvfleet_app}
monitor=${MONITOR_USER:-kvfleet_monitor}
db=${POSTGRES_DB:-kvfleet}
data=${PGDATA:-/var/lib/postgresql/data}

# literal VALUE: VALUE as an SQL string literal.
literal() { printf "'%s'" "${1//\'/\'\'}"; }

# single_user DATABASE: runs the SQL on stdin in single-user mode (as the
# bootstrap superuser, whatever its name); fails on any SQL error.
single_user() {
	local log rc=0
	log=$(mktemp)
	postgres --single -D "$data" -j "$1" >/dev/null 2>"$log" || rc=$?
	if ((rc != 0)) || grep -q 'ERROR:' "$log"; then
		# Not the statements: they hold passwords.
		grep -E 'ERROR:|FATAL:' "$log" >&2 || cat "$log" >&2
		rm -f "$log"
		echo "postgres start: setting up the roles failed (above)" >&2
		exit 1
	fi
	rm -f "$log"
}

if [[ ! -s $data/PG_VERSION ]]; then
	initdb -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
		--auth-local=peer --auth-host=scram-sha-256 >/dev/null
	printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$data/pg_hba.conf"
	single_user postgres <<SQL
CREATE ROLE "$owner" LOGIN;

CREATE DATABASE "$db" OWNER "$owner";

SQL
fi

single_user "$db" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$owner') THEN CREATE ROLE "$owner" LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$app') THEN CREATE ROLE "$app" LOGIN; END IF;
END \$\$;

ALTER ROLE "$owner" WITH LOGIN PASSWORD $(literal "$POSTGRES_PASSWORD");

ALTER ROLE "$app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD $(literal "$APP_PASSWORD");

REVOKE ALL ON DATABASE "$db" FROM PUBLIC;

GRANT CONNECT, TEMPORARY ON DATABASE "$db" TO "$app";

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO "$app";

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "$app";

GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "$app";

ALTER DEFAULT PRIVILEGES FOR ROLE "$owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "$app";

ALTER DEFAULT PRIVILEGES FOR ROLE "$owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "$app";

SQL

if [[ -n ${MONITOR_PASSWORD:-} ]]; then
	single_user "$db" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$monitor') THEN CREATE ROLE "$monitor" LOGIN; END IF;
END \$\$;

ALTER ROLE "$monitor" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD $(literal "$MONITOR_PASSWORD");

GRANT pg_monitor TO "$monitor";

GRANT CONNECT ON DATABASE "$db" TO "$monitor";

SQL
fi

exec postgres -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp \
	-c max_connections="${MAX_CONNECTIONS:-100}" -c shared_buffers="${SHARED_BUFFERS:-128MB}"
