#!/usr/bin/env bash
# Starts a Redis data node: the master, or a replica of REPLICA_OF. Nodes
# announce their service hostname so that Sentinel can find them again when
# a container comes back with another address. The cache keeps no
# persistence: a restarted node resynchronises from the master.
set -euo pipefail
: "${REDIS_PASSWORD:?}" "${ANNOUNCE_HOST:?}"
args=(
	--port 6379
	--dir /data
	--requirepass "$REDIS_PASSWORD"
	--masterauth "$REDIS_PASSWORD"
	--replica-announce-ip "$ANNOUNCE_HOST"
	--save ''
	--appendonly no
	--maxmemory "${MAXMEMORY:-256mb}"
	--maxmemory-policy allkeys-lru
	# A master without a replica in sync refuses writes, so that a write
	# cannot be acknowledged by a node about to be cut off and replaced.
	--min-replicas-to-write 1
	--min-replicas-max-lag 10
)
if [[ -n ${REPLICA_OF:-} ]]; then
	args+=(--replicaof "$REPLICA_OF" 6379)
fi
exec redis-server "${args[@]}"
