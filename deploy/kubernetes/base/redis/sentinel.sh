#!/usr/bin/env bash
# Starts a Redis Sentinel. Sentinel rewrites its configuration file as the
# topology changes, so the file is generated into the container's writable
# data directory at every start rather than mounted read-only.
set -euo pipefail
: "${REDIS_PASSWORD:?}" "${SENTINEL_PASSWORD:?}" "${SENTINEL_ANNOUNCE:?}"
conf=/data/sentinel.conf
# The passwords stay in this file, readable only by redis, and off the
# command line.
umask 077
cat >"$conf" <<CONF
port 26379
dir /data
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${SENTINEL_ANNOUNCE}
requirepass ${SENTINEL_PASSWORD}
sentinel sentinel-pass ${SENTINEL_PASSWORD}
sentinel monitor ${MASTER_NAME:-kvfleet} ${MASTER_HOST:-redis-master} 6379 ${QUORUM:-2}
sentinel auth-pass ${MASTER_NAME:-kvfleet} ${REDIS_PASSWORD}
sentinel down-after-milliseconds ${MASTER_NAME:-kvfleet} ${DOWN_AFTER_MS:-5000}
sentinel failover-timeout ${MASTER_NAME:-kvfleet} ${FAILOVER_TIMEOUT_MS:-30000}
sentinel parallel-syncs ${MASTER_NAME:-kvfleet} 1
CONF
exec redis-sentinel "$conf"
