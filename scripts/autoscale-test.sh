#!/usr/bin/env bash
# Runs the autoscaler's live test (cmd/kvfleet-autoscale, `make
# autoscale-test`) against a fleet of its own: it brings up a separate
# Compose project (kvfleet-autoscale on port 18200, so a running fleet is
# left alone) with ./start.sh at its minimum size, runs the scaler beside it
# through the test's schedule, saves the fleet's logs to
# autoscale-logs.txt if a check fails, and tears the fleet and its volumes
# down (KVFLEET_AUTOSCALE_KEEP=true keeps it for a look). Arguments go to
# the test: CI runs `scripts/autoscale-test.sh --quick`.
#
# The load is bounded in time by the schedule and goes only to
# 127.0.0.1; to keep two load runs from sharing the machine, run it under
# flock, e.g. flock /tmp/kvfleet-load.lock scripts/autoscale-test.sh --quick.
#
# It uses the Compose command that start.sh uses (KVFLEET_COMPOSE, or the
# same search: scripts/lib/compose.sh). Without a reachable Docker engine it
# skips, except with CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh

export KVFLEET_PROJECT=kvfleet-autoscale
export KVFLEET_ENV_FILE=.env.autoscale
export KVFLEET_PORT=${KVFLEET_AUTOSCALE_PORT:-18200}
export KVFLEET_RABBITMQ_UI_PORT=25674 KVFLEET_PROMETHEUS_PORT=19092 KVFLEET_GRAFANA_PORT=13002
# The test starts from the scaler's minimum (3 API replicas, 2 consumers).
export KVFLEET_API_REPLICAS=3 KVFLEET_CONSUMER_REPLICAS=2

say() { printf '==> autoscale: %s\n' "$*"; }

docker_reachable() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

teardown() {
	if [[ ${KVFLEET_AUTOSCALE_KEEP:-} == true ]]; then
		say "keeping the fleet (KVFLEET_AUTOSCALE_KEEP=true); remove it with: KVFLEET_PROJECT=$KVFLEET_PROJECT KVFLEET_ENV_FILE=$KVFLEET_ENV_FILE ./start.sh --down --volumes"
		return
	fi
	say "tearing the autoscale fleet down"
	./start.sh --down --volumes >/dev/null 2>&1 || true
	rm -f "$KVFLEET_ENV_FILE"
}

main() {
	if ! docker_reachable; then
		if [[ ${CI:-} == true ]]; then
			printf 'autoscale: FAILED: the Docker engine is not reachable, and CI must run the autoscaling test\n' >&2
			exit 1
		fi
		say "SKIPPED: no reachable Docker engine (start Docker to run the autoscaling test)"
		return
	fi
	COMPOSE=()
	find_compose || exit 1
	# start.sh, the scaler and the test then use the same Compose command.
	export KVFLEET_COMPOSE="${COMPOSE[*]}"
	trap teardown EXIT
	rm -f autoscale-logs.txt
	./start.sh
	say "running the test against http://127.0.0.1:$KVFLEET_PORT (project $KVFLEET_PROJECT)"
	local rc=0
	go run ./cmd/kvfleet-autoscale "$@" || rc=$?
	if ((rc != 0)); then
		./start.sh --logs >autoscale-logs.txt 2>&1 || true
		docker ps -a --filter "label=com.docker.compose.project=$KVFLEET_PROJECT" >>autoscale-logs.txt
		say "FAILED; the result is in the JSON named above and the fleet's logs in autoscale-logs.txt"
		exit "$rc"
	fi
	say "passed"
}

main "$@"
