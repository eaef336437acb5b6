#!/usr/bin/env bash
# Initialises the CockroachDB cluster (once; a rerun finds it initialised),
# creates the database and its two login roles, and installs the licence
# key when one is given (see the README: releases since v24.3 throttle
# multi-node clusters that run without one). Safe to rerun: passwords from
# the environment replace the stored ones.
#
# Roles, as in the PostgreSQL profile (deploy/postgres/start.sh):
#   kvfleet_app  the API and the consumers: may read and write the rows of
#                the tables, nothing else
#   kvfleet      owns the database and the tables; the migrate job
#   root         the cluster's admin, by client certificate only (this job,
#                the healthchecks)
# Statements go to `cockroach sql` on stdin, never as arguments, so that no
# password is on a command line.
set -euo pipefail
: "${KVFLEET_DB_PASSWORD:?}" "${KVFLEET_DB_APP_PASSWORD:?}"
owner=kvfleet
app=kvfleet_app
db=kvfleet

# sql [ARGS]: runs the statements on stdin as root.
sql() { cockroach sql --certs-dir=/certs --host=cockroach-1:26257 "$@"; }

# literal VALUE: VALUE as an SQL string literal.
literal() { printf "'%s'" "${1//\'/\'\'}"; }

until out=$(cockroach init --certs-dir=/certs --host=cockroach-1:26257 2>&1); do
	if grep -q "already been initialized" <<<"$out"; then
		break
	fi
	echo "waiting for cockroach-1: $out" >&2
	sleep 2
done

# The rights come before the passwords: the migrate job cannot log in (and
# create tables) until the owner has a password, and by then every table
# it creates gets the application's rights by default.
sql <<SQL
CREATE USER IF NOT EXISTS $owner;
CREATE USER IF NOT EXISTS $app;
CREATE DATABASE IF NOT EXISTS $db;
ALTER DATABASE $db OWNER TO $owner;
SQL
sql --database="$db" <<SQL
REVOKE ALL ON DATABASE $db FROM public;
GRANT CONNECT ON DATABASE $db TO $app;
REVOKE CREATE ON SCHEMA public FROM public;
GRANT CREATE, USAGE ON SCHEMA public TO $owner;
GRANT USAGE ON SCHEMA public TO $app;
ALTER DEFAULT PRIVILEGES FOR ROLE $owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO $app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $app;
SQL
sql <<SQL
ALTER USER $owner WITH PASSWORD $(literal "$KVFLEET_DB_PASSWORD");
ALTER USER $app WITH PASSWORD $(literal "$KVFLEET_DB_APP_PASSWORD");
SQL

if [[ -n ${COCKROACH_LICENSE_KEY:-} ]]; then
	sql <<SQL
SET CLUSTER SETTING cluster.organization = $(literal "${COCKROACH_ORGANIZATION:-}");
SET CLUSTER SETTING enterprise.license = $(literal "$COCKROACH_LICENSE_KEY");
SQL
fi
echo "cluster ready"
