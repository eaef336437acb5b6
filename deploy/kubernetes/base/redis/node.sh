#!/usr/bin/env bash
# Starts a Redis data node: the master, or a replica of REPLICA_OF. Nodes
# announce their service hostname so that Sentinel can find them again when
# a container comes back with another address. The cache keeps no
# persistence: a restarted node resynchronises from the master.
#
# The password goes into a configuration file readable only by redis, not
# onto the command line, where every process of the host could read it.
#
# Memory (the container's limit is in docker-compose.yml): MAXMEMORY of
# cached entries, plus up to 64 MiB of output buffer per replica during a
# resynchronisation, plus Redis's own overhead. Every key the fleet writes
# has a TTL (entries KVFLEET_CACHE_TTL, "not found" markers
# KVFLEET_CACHE_NOT_FOUND_TTL), so volatile-lru may evict any of them, and
# it takes the least recently used first: an entry just written by a
# consumer is the most recently used, so it is never the one evicted while
# older entries remain. (Evicting it would let a slow reader fill an older
# version back into the cache.)
set -euo pipefail
: "${REDIS_PASSWORD:?}" "${ANNOUNCE_HOST:?}"

# quoted VALUE: VALUE as a double-quoted string of redis.conf.
quoted() {
	local v=${1//\\/\\\\}
	printf '"%s"' "${v//\"/\\\"}"
}

conf=/data/redis.conf
umask 077
cat >"$conf" <<CONF
port 6379
dir /data
requirepass $(quoted "$REDIS_PASSWORD")
masterauth $(quoted "$REDIS_PASSWORD")
replica-announce-ip ${ANNOUNCE_HOST}
save ""
appendonly no
maxmemory ${MAXMEMORY:-128mb}
maxmemory-policy volatile-lru
maxmemory-samples 10
client-output-buffer-limit replica 64mb 32mb 60
# A master without a replica in sync refuses writes, so that a write
# cannot be acknowledged by a node about to be cut off and replaced.
min-replicas-to-write 1
min-replicas-max-lag 10
CONF
if [[ -n ${REPLICA_OF:-} ]]; then
	printf 'replicaof %s 6379\n' "$REPLICA_OF" >>"$conf"
fi
exec redis-server "$conf"
