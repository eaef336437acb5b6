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
readonly LOG_FILE=${KVFLEET_LOCAL_LOG:-kvfleet-local.log}

say() { printf '==> %s\n' "$*"; }
die() {
	printf 'run-local: %s\n' "$*" >&2
	exit 1
}

check_prerequisites() {
	command -v go >/dev/null || die "Go is not installed; install Go 1.26 or newer (https://go.dev/dl/) and run again"
	command -v curl >/dev/null || die "curl is not installed; run: apt-get install -y curl"
	if (exec 3<>"/dev/tcp/${HTTP_ADDR%:*}/${HTTP_ADDR##*:}") 2>/dev/null; then
		die "$HTTP_ADDR is already in use; stop what listens there or set KVFLEET_LOCAL_HTTP=127.0.0.1:<port>"
	fi
}

main() {
	check_prerequisites
	say "installing the servers if missing (Redis, Sentinel, PostgreSQL, RabbitMQ)"
	scripts/install-test-deps.sh
	say "building"
	make --no-print-directory build
	say "starting (log: $LOG_FILE)"
	bin/kvfleet-local -bin bin -http "$HTTP_ADDR" >"$LOG_FILE" 2>&1 &
	local pid=$!
	trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
	trap 'exit 130' INT TERM

	local deadline=$((SECONDS + 120))
	until grep -q '^kvfleet is running' "$LOG_FILE" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || {
			tail -n 40 "$LOG_FILE" >&2
			die "kvfleet did not start; the last lines of $LOG_FILE are above"
		}
		((SECONDS < deadline)) || die "kvfleet did not become ready within 120s; see $LOG_FILE"
		sleep 0.5
	done
	scripts/smoke-test.sh "http://$HTTP_ADDR"
	cat <<MSG

kvfleet is running:
  API      http://$HTTP_ADDR   (try: curl "http://$HTTP_ADDR/?key=teste")
  health   http://$HTTP_ADDR/health
  metrics  http://127.0.0.1:9100/metrics (API), http://127.0.0.1:9101/metrics (consumer)
  log      $LOG_FILE
Press Ctrl-C to stop; the data is discarded.
MSG
	wait "$pid"
}

main "$@"
