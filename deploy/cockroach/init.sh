#!/usr/bin/env bash
# Initialises the CockroachDB cluster (once; a rerun finds it initialised),
# creates the kvfleet user with its password and the kvfleet database, and
# installs the licence key when one is given (see the README: releases
# since v24.3 throttle multi-node clusters that run without one).
set -euo pipefail
: "${KVFLEET_DB_PASSWORD:?}"
sql() { cockroach sql --certs-dir=/certs --host=cockroach-1:26257 -e "$1"; }

until out=$(cockroach init --certs-dir=/certs --host=cockroach-1:26257 2>&1); do
	if grep -q "already been initialized" <<<"$out"; then
		break
	fi
	echo "waiting for cockroach-1: $out" >&2
	sleep 2
done

password=${KVFLEET_DB_PASSWORD//\'/\'\'}
sql "CREATE USER IF NOT EXISTS kvfleet; ALTER USER kvfleet WITH PASSWORD '$password';"
sql "CREATE DATABASE IF NOT EXISTS kvfleet; ALTER DATABASE kvfleet OWNER TO kvfleet;"
if [[ -n ${COCKROACH_LICENSE_KEY:-} ]]; then
	organization=${COCKROACH_ORGANIZATION//\'/\'\'}
	sql "SET CLUSTER SETTING cluster.organization = '$organization';"
	sql "SET CLUSTER SETTING enterprise.license = '${COCKROACH_LICENSE_KEY//\'/\'\'}';"
fi
echo "cluster ready"
