#!/usr/bin/env bash
# Runs kvfleet on this machine without Docker and proves it works.
#
# One API and one consumer against Redis (master, replica, three
# Sentinels), PostgreSQL and RabbitMQ started on loopback ports from
# Debian's packages: the development counterpart of ./start.sh's Docker
# fleet. It builds the binaries, starts everything, runs the smoke tests,
# then keeps running until Ctrl-C, which stops everything and discards the
# data. (`make run-local`)
set -euo pipefail

cd "$(dirname "$0")/.."
readonly HTTP_ADDR=${KVFLEET_LOCAL_HTTP:-127.0.0.1:8000}
readonly OPS_ADDR=${KVFLEET_LOCAL_OPS:-127.0.0.1:9100}
readonly CONSUMER_OPS_ADDR=${KVFLEET_LOCAL_CONSUMER_OPS:-127.0.0.1:9101}
readonly LOG_FILE=${KVFLEET_LOCAL_LOG:-kvfleet-local.log}
# RabbitMQ's first boot takes most of this on a 2-core machine.
readonly READY_SECONDS=120
# The pid of bin/kvfleet-local once started; the EXIT trap stops it.
KVFLEET_PID=

say() { printf '==> %s\n' "$*"; }
die() {
	printf 'run-local: %s\n' "$*" >&2
	exit 1
}

check_prerequisites() {
	command -v go >/dev/null || die "Go is not installed; install Go 1.26 or newer (https://go.dev/dl/) and run again"
	command -v curl >/dev/null || die "curl is not installed; run: apt-get install -y curl"
	check_port_free "$HTTP_ADDR" KVFLEET_LOCAL_HTTP
	check_port_free "$OPS_ADDR" KVFLEET_LOCAL_OPS
	check_port_free "$CONSUMER_OPS_ADDR" KVFLEET_LOCAL_CONSUMER_OPS
}

# check_port_free ADDR VARIABLE: dies if something listens on ADDR.
check_port_free() {
	local addr=$1 variable=$2
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
		die "$addr is already in use; stop what listens there or set $variable=127.0.0.1:<port>"
	fi
}

# is_ready URL: whether URL answers 200.
is_ready() {
	curl --silent --fail --max-time 2 --output /dev/null "$1"
}

# wait_ready: waits, at most READY_SECONDS, until the API and the consumer
# report ready on their /readyz; dies with the end of the log if
# kvfleet-local exits first or time runs out.
wait_ready() {
	local deadline=$((SECONDS + READY_SECONDS))
	until is_ready "http://$OPS_ADDR/readyz" && is_ready "http://$CONSUMER_OPS_ADDR/readyz"; do
		if ! kill -0 "$KVFLEET_PID" 2>/dev/null; then
			tail -n 40 "$LOG_FILE" >&2
			die "kvfleet did not start; the last lines of $LOG_FILE are above"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 40 "$LOG_FILE" >&2
			die "kvfleet was not ready within ${READY_SECONDS}s (http://$OPS_ADDR/readyz, http://$CONSUMER_OPS_ADDR/readyz); the last lines of $LOG_FILE are above"
		fi
		sleep 1
	done
}

# stop_kvfleet: SIGTERM to kvfleet-local, which stops the API, the consumer
# and the servers and discards the data; waits until it has.
stop_kvfleet() {
	if [[ -n "$KVFLEET_PID" ]]; then
		kill -TERM "$KVFLEET_PID" 2>/dev/null || true
		wait "$KVFLEET_PID" 2>/dev/null || true
	fi
}

main() {
	check_prerequisites
	say "installing the servers if missing (Redis, Sentinel, PostgreSQL, RabbitMQ)"
	scripts/install-test-deps.sh
	say "building"
	make --no-print-directory build
	say "starting (log: $LOG_FILE)"
	trap stop_kvfleet EXIT
	trap 'exit 130' INT TERM
	bin/kvfleet-local -bin bin -http "$HTTP_ADDR" -ops "$OPS_ADDR" -consumer-ops "$CONSUMER_OPS_ADDR" >"$LOG_FILE" 2>&1 &
	KVFLEET_PID=$!
	wait_ready
	scripts/smoke-test.sh "http://$HTTP_ADDR"
	cat <<MSG

kvfleet is running:
  API      http://$HTTP_ADDR   (try: curl "http://$HTTP_ADDR/?key=teste")
  health   http://$HTTP_ADDR/health
  metrics  http://$OPS_ADDR/metrics (API), http://$CONSUMER_OPS_ADDR/metrics (consumer)
  log      $LOG_FILE
Press Ctrl-C to stop; the data is discarded.
MSG
	wait "$KVFLEET_PID" || die "kvfleet-local stopped on its own; the reason is at the end of $LOG_FILE"
}

main "$@"
