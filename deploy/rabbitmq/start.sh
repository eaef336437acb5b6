#!/usr/bin/env bash
# Starts a RabbitMQ cluster node. The Erlang cookie, the configuration and
# the enabled plugins are written from the environment at every start, so
# that the same script runs on the official image and on the Debian
# stand-in (whose entrypoints differ).
set -euo pipefail
: "${RABBITMQ_USER:?}" "${RABBITMQ_PASSWORD:?}" "${RABBITMQ_COOKIE:?}"
home=/var/lib/rabbitmq
umask 077
# The cookie file is read-only once written (and the packages ship one).
rm -f "$home/.erlang.cookie"
printf '%s' "$RABBITMQ_COOKIE" >"$home/.erlang.cookie"
chmod 400 "$home/.erlang.cookie"
umask 022

cat >"$home/kvfleet.conf" <<CONF
listeners.tcp.default = 5672
loopback_users = none
default_user = ${RABBITMQ_USER}
default_pass = ${RABBITMQ_PASSWORD}
default_vhost = /
# Peer discovery from a fixed list; a node started alone waits for the others.
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = rabbit@rabbitmq-1
cluster_formation.classic_config.nodes.2 = rabbit@rabbitmq-2
cluster_formation.classic_config.nodes.3 = rabbit@rabbitmq-3
# A node cut off from the majority pauses instead of accepting writes that
# the majority will never see.
cluster_partition_handling = pause_minority
vm_memory_high_watermark.relative = 0.4
disk_free_limit.absolute = 200MB
management.tcp.port = 15672
prometheus.tcp.port = 15692
# Per-queue series (backlog of kvfleet.writes) for the scaler and dashboards.
prometheus.return_per_object_metrics = true
log.console = true
log.console.level = warning
log.file = false
CONF
printf '[rabbitmq_management,rabbitmq_prometheus].\n' >"$home/enabled_plugins"

export HOME=$home
export RABBITMQ_CONFIG_FILE=$home/kvfleet.conf
export RABBITMQ_ENABLED_PLUGINS_FILE=$home/enabled_plugins
RABBITMQ_NODENAME=rabbit@$(hostname)
export RABBITMQ_NODENAME
exec rabbitmq-server
