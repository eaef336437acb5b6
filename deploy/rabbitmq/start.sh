#!/usr/bin/env bash
# Starts a RabbitMQ cluster node. The Erlang cookie, the configuration, the
# enabled plugins and the users are written from the environment at every
# start, so that the same script runs on the official image and on the
# Debian stand-in (whose entrypoints differ).
#
# Users (imported from a definitions file at every boot, so that a password
# changed in .env takes effect and an older cluster is brought in line):
#   RABBITMQ_USER (kvfleet)       the API and the consumers: no tags (no
#                                 management UI, no user or policy
#                                 administration), and only the kvfleet.*
#                                 queues and exchanges plus publishing
#                                 through the default exchange
#   RABBITMQ_ADMIN_USER (admin)   the management UI, administrator
# Passwords are stored as salted SHA-256 hashes, never in a command line.
#
# Memory, bounded whatever clients send (docs/security.md has the figures):
# - Policies keep the bodies of queued messages on disk only
#   (max-in-memory-length 0: RabbitMQ 3.10's quorum queues otherwise hold
#   every body in memory, and a few hundred large writes behind busy
#   consumers ran all three nodes out of memory, again at every restart
#   as each replayed its log). From 3.12 on bodies are always on disk and
#   the key is ignored.
# - The write queue is bounded in bytes and in messages, with overflow
#   reject-publish: beyond the bound the broker refuses a publish (a nack,
#   which the API answers 503 queue_full) instead of growing until an alarm.
#   The message bound caps the per-message bookkeeping that stays in memory.
# - The alarm that blocks publishers is at 60 % of the container's memory
#   limit (read from the cgroup; RabbitMQ does not always see it by itself),
#   the rest being headroom for the Erlang VM's garbage collection above it,
#   and the quorum queues' write-ahead log is kept small (64 MiB) so that
#   it fits under it (its default, 512 MiB, is larger than the container).
#
# The bounds are policies rather than queue arguments so that they apply to
# a queue that already exists (arguments are fixed when a queue is
# declared) and can be changed without touching the applications.
set -euo pipefail
: "${RABBITMQ_USER:?}" "${RABBITMQ_PASSWORD:?}" "${RABBITMQ_ADMIN_PASSWORD:?}" "${RABBITMQ_COOKIE:?}"
admin=${RABBITMQ_ADMIN_USER:-admin}
queue=${RABBITMQ_WRITE_QUEUE:-kvfleet.writes}
max_queue_bytes=${RABBITMQ_WRITE_QUEUE_MAX_BYTES:-536870912}
max_queue_messages=${RABBITMQ_WRITE_QUEUE_MAX_MESSAGES:-500000}
[[ $max_queue_bytes =~ ^[0-9]+$ && $max_queue_messages =~ ^[0-9]+$ ]] || {
	echo "start.sh: RABBITMQ_WRITE_QUEUE_MAX_BYTES and RABBITMQ_WRITE_QUEUE_MAX_MESSAGES must be whole numbers" >&2
	exit 1
}
home=/var/lib/rabbitmq

# memory_limit prints the container's memory limit in bytes, or nothing
# when there is none (cgroup v2, then v1; v1 reports "no limit" as a huge
# number, above the machine's memory).
memory_limit() {
	local limit="" total
	if [[ -r /sys/fs/cgroup/memory.max ]]; then
		limit=$(</sys/fs/cgroup/memory.max)
	elif [[ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
		limit=$(</sys/fs/cgroup/memory/memory.limit_in_bytes)
	fi
	[[ $limit =~ ^[0-9]+$ ]] || return 0
	total=$(($(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) * 1024))
	((limit < total)) && printf '%s\n' "$limit"
	return 0
}

# json_string VALUE: VALUE as a JSON string.
json_string() {
	local v=${1//\\/\\\\}
	printf '"%s"' "${v//\"/\\\"}"
}

# unhex HEX: writes the bytes that HEX spells.
unhex() {
	local hex=$1 escaped=""
	while [[ -n $hex ]]; do
		escaped+="\\x${hex:0:2}"
		hex=${hex:2}
	done
	printf '%b' "$escaped"
}

# password_hash PASSWORD: RabbitMQ's rabbit_password_hashing_sha256 form,
# base64(salt + sha256(salt + password)) with a random 4-byte salt.
password_hash() {
	local salt digest
	salt=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
	digest=$({
		unhex "$salt"
		printf '%s' "$1"
	} | sha256sum | cut -d' ' -f1)
	unhex "$salt$digest" | base64 -w0
}

umask 077
# The cookie file is read-only once written (and the packages ship one).
rm -f "$home/.erlang.cookie"
printf '%s' "$RABBITMQ_COOKIE" >"$home/.erlang.cookie"
chmod 400 "$home/.erlang.cookie"

cat >"$home/definitions.json" <<JSON
{
  "users": [
    {"name": $(json_string "$RABBITMQ_USER"), "password_hash": "$(password_hash "$RABBITMQ_PASSWORD")",
     "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
    {"name": $(json_string "$admin"), "password_hash": "$(password_hash "$RABBITMQ_ADMIN_PASSWORD")",
     "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}
  ],
  "vhosts": [{"name": "/"}],
  "permissions": [
    {"user": $(json_string "$RABBITMQ_USER"), "vhost": "/",
     "configure": "^kvfleet\\\\.", "write": "^(kvfleet\\\\.|amq\\\\.default$)", "read": "^kvfleet\\\\."},
    {"user": $(json_string "$admin"), "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
  ],
  "policies": [
    {"vhost": "/", "name": "kvfleet-writes", "pattern": $(json_string "^${queue//./\\.}\$"), "apply-to": "queues", "priority": 1,
     "definition": {"max-length-bytes": $max_queue_bytes, "max-length": $max_queue_messages,
                    "overflow": "reject-publish", "max-in-memory-length": 0}},
    {"vhost": "/", "name": "kvfleet-queues", "pattern": "^kvfleet\\\\.", "apply-to": "queues", "priority": 0,
     "definition": {"max-in-memory-length": 0}}
  ]
}
JSON

watermark="vm_memory_high_watermark.relative = 0.4"
limit=$(memory_limit)
if [[ -n $limit ]]; then
	watermark="total_memory_available_override_value = $limit
vm_memory_high_watermark.absolute = $((limit / 10 * 6))"
fi

cat >"$home/kvfleet.conf" <<CONF
listeners.tcp.default = 5672
loopback_users = none
load_definitions = $home/definitions.json
# Peer discovery from a fixed list; a node started alone waits for the others.
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = rabbit@rabbitmq-1
cluster_formation.classic_config.nodes.2 = rabbit@rabbitmq-2
cluster_formation.classic_config.nodes.3 = rabbit@rabbitmq-3
# A node cut off from the majority pauses instead of accepting writes that
# the majority will never see.
cluster_partition_handling = pause_minority
$watermark
raft.wal_max_size_bytes = 67108864
disk_free_limit.absolute = 200MB
management.tcp.port = 15672
prometheus.tcp.port = 15692
# Per-queue series (backlog of kvfleet.writes) for the scaler and dashboards.
prometheus.return_per_object_metrics = true
log.console = true
log.console.level = warning
log.file = false
CONF
umask 022
printf '[rabbitmq_management,rabbitmq_prometheus].\n' >"$home/enabled_plugins"

export HOME=$home
export RABBITMQ_CONFIG_FILE=$home/kvfleet.conf
export RABBITMQ_ENABLED_PLUGINS_FILE=$home/enabled_plugins
# Idle schedulers sleep instead of spinning: an idle node then costs next
# to no CPU, which matters with three nodes on a laptop.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-} +sbwt none +sbwtdcpu none +sbwtdio none"
RABBITMQ_NODENAME=rabbit@$(hostname)
export RABBITMQ_NODENAME
exec rabbitmq-server
