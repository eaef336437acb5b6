#!/usr/bin/env bash
# The fleet's autoscaler: scales the API replicas by CPU and requests in
# flight and the consumers by the write queue's backlog, reading both from
# the fleet's Prometheus, with the Kubernetes HPA rule. The logic is the Go
# command cmd/kvfleet-scaler (internal/scaler, unit-tested); this script
# builds it and runs it next to a fleet that ./start.sh brought up.
# Usage: see usage() below, or ./monitor-scale.sh --help.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh

readonly BIN=bin/kvfleet-scaler

usage() {
	cat <<'USAGE'
Usage: ./monitor-scale.sh [--dry-run] [--once] [--FLAG VALUE...] | --help

  (no argument)   decide every 5 s and scale the fleet until Ctrl-C
  --dry-run       decide and log every decision, change nothing
  --once          decide once for each service and exit (never scales
                  down: that needs 5 minutes of lower load)
  -h, --help      print this help and every setting

Each decision is one JSON line on stdout: the service, the signals
(value/target per replica), current -> desired replicas and the reason.
Metrics for the dashboards: http://127.0.0.1:9102/metrics
(kvfleet_scaler_*). How it decides: docs/autoscaling.md.
To run it as a service of the fleet instead, where Prometheus scrapes
its metrics: ./start.sh --autoscale.

Settings are flags, environment variables or lines in .env, e.g.
  KVFLEET_SCALER_API_MIN=3 KVFLEET_SCALER_API_MAX=8 ./monitor-scale.sh
  ./monitor-scale.sh --consumer-max 4 --down-window 10m
The fleet: KVFLEET_PROJECT (kvfleet), KVFLEET_ENV_FILE (.env),
KVFLEET_COMPOSE (found as start.sh finds it), KVFLEET_PROMETHEUS_PORT (9090).
USAGE
}

note() { printf 'monitor-scale.sh: %s\n' "$*" >&2; }
die() {
	note "$*"
	exit 1
}

# build_scaler builds bin/kvfleet-scaler from the source, so that the
# scaler always matches the checkout; without Go it runs the one built
# earlier, if any.
build_scaler() {
	if command -v go >/dev/null; then
		CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/kvfleet-scaler ||
			die "could not build the scaler (see above); fix the build or run: make scaler"
	elif [[ -x $BIN ]]; then
		note "Go is not installed: running the $BIN built earlier"
	else
		die "Go is missing and $BIN is not built: install Go 1.26 (see README) or build $BIN elsewhere with: make scaler"
	fi
}

# choose_compose exports KVFLEET_COMPOSE, the Compose command the scaler
# runs, chosen as start.sh chooses it. A dry run changes nothing and needs
# none.
choose_compose() {
	command -v docker >/dev/null || die "Docker is not installed; the scaler counts and scales the fleet's containers with it"
	if [[ -z ${KVFLEET_COMPOSE:-} ]]; then
		find_compose || die "no usable Docker Compose (see above)"
		export KVFLEET_COMPOSE="${COMPOSE[*]}"
	fi
}

main() {
	local arg dry_run=false
	for arg in "$@"; do
		case $arg in
		-h | --help | -help)
			usage
			if build_scaler >/dev/null 2>&1; then
				printf '\nAll settings:\n\n'
				"$BIN" --help | sed -n '/^Flags:/,$p'
			else
				printf '\nEvery setting: make scaler && bin/kvfleet-scaler --help\n'
			fi
			return
			;;
		--dry-run | -dry-run) dry_run=true ;;
		esac
	done
	build_scaler
	$dry_run || choose_compose
	# The scaler checks the rest of the command line: an unknown flag or
	# argument prints its usage and exits 2 before anything is touched.
	exec "$BIN" "$@"
}

main "$@"
