#!/bin/sh
# Starts the one Redis exporter of the fleet. Prometheus asks it for each
# node in turn (/scrape?target=redis://HOST:PORT, deploy/prometheus/
# prometheus.yml): the data nodes and the Sentinels, which have different
# passwords. The exporter reads them from a file that maps each target to
# its password, written here from the environment into a file only this
# user can read: no password is on a command line.
#
# POSIX sh, not bash: the official image (the exporter's Alpine variant)
# has no bash. It uses only the exporter at /redis_exporter, as the
# official image and the Debian stand-in both have it.
set -eu
: "${REDIS_PASSWORD:?}" "${SENTINEL_PASSWORD:?}"
data_nodes=${DATA_NODES:-redis-master:6379 redis-replica-1:6379 redis-replica-2:6379}
sentinels=${SENTINELS:-redis-sentinel-1:26379 redis-sentinel-2:26379 redis-sentinel-3:26379}

# json_string VALUE: VALUE as a JSON string.
json_string() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

umask 077
file=$(mktemp)
{
	printf '{'
	sep=''
	for node in $data_nodes; do
		printf '%s"redis://%s":%s' "$sep" "$node" "$(json_string "$REDIS_PASSWORD")"
		sep=','
	done
	for node in $sentinels; do
		printf '%s"redis://%s":%s' "$sep" "$node" "$(json_string "$SENTINEL_PASSWORD")"
	done
	printf '}\n'
} >"$file"

# The exporter reads REDIS_PASSWORD itself, as the password of every
# target, which would override the Sentinels' entries of the file.
unset REDIS_PASSWORD SENTINEL_PASSWORD
exec /redis_exporter -redis.password-file "$file" -web.listen-address :9121
