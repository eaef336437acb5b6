#!/usr/bin/env bash
# Runs the chaos suite (cmd/kvfleet-chaos, `make chaos`) against a fleet of
# its own: it brings up a separate Compose project (kvfleet-chaos on port
# 18100, so a running fleet is left alone) with ./start.sh, runs the suite
# through that fleet's nginx, saves the fleet's logs to chaos-logs.txt if a
# scenario fails, and tears the fleet and its volumes down
# (KVFLEET_CHAOS_KEEP=true keeps it for a look). Arguments go to the suite,
# except --hostile, which runs the hostile-client suite's quick schedule
# (cmd/kvfleet-hostile) on the same fleet once the chaos suite has passed:
# CI runs `scripts/chaos.sh --quick --hostile`.
#
# It uses the Compose command that start.sh uses (KVFLEET_COMPOSE, or the
# same search: scripts/lib/compose.sh). Without a reachable Docker engine it
# skips, except with CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh

export KVFLEET_PROJECT=kvfleet-chaos
export KVFLEET_ENV_FILE=.env.chaos
export KVFLEET_PORT=${KVFLEET_CHAOS_PORT:-18100}
export KVFLEET_RABBITMQ_UI_PORT=25673 KVFLEET_PROMETHEUS_PORT=19091 KVFLEET_GRAFANA_PORT=13001

say() { printf '==> chaos: %s\n' "$*"; }

docker_reachable() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

teardown() {
	if [[ ${KVFLEET_CHAOS_KEEP:-} == true ]]; then
		say "keeping the fleet (KVFLEET_CHAOS_KEEP=true); remove it with: KVFLEET_PROJECT=$KVFLEET_PROJECT KVFLEET_ENV_FILE=$KVFLEET_ENV_FILE ./start.sh --down --volumes"
		return
	fi
	say "tearing the chaos fleet down"
	./start.sh --down --volumes >/dev/null 2>&1 || true
	rm -f "$KVFLEET_ENV_FILE"
}

main() {
	local hostile=false args=()
	for a in "$@"; do
		if [[ $a == --hostile ]]; then hostile=true; else args+=("$a"); fi
	done
	set -- "${args[@]}"
	if ! docker_reachable; then
		if [[ ${CI:-} == true ]]; then
			printf 'chaos: FAILED: the Docker engine is not reachable, and CI must run the chaos suite\n' >&2
			exit 1
		fi
		say "SKIPPED: no reachable Docker engine (start Docker to run the chaos suite)"
		return
	fi
	COMPOSE=()
	find_compose || exit 1
	# start.sh and the suite then use the same Compose command.
	export KVFLEET_COMPOSE="${COMPOSE[*]}"
	trap teardown EXIT
	rm -f chaos-logs.txt
	./start.sh
	say "running the suite against http://127.0.0.1:$KVFLEET_PORT (project $KVFLEET_PROJECT)"
	local rc=0
	go run ./cmd/kvfleet-chaos "$@" || rc=$?
	if ((rc == 0)) && [[ $hostile == true ]]; then
		say "running the hostile-client suite (quick) against the same fleet"
		go run ./cmd/kvfleet-hostile -quick -api "http://127.0.0.1:$KVFLEET_PORT" -project "$KVFLEET_PROJECT" || rc=$?
	fi
	if ((rc != 0)); then
		./start.sh --logs >chaos-logs.txt 2>&1 || true
		docker ps -a --filter "label=com.docker.compose.project=$KVFLEET_PROJECT" >>chaos-logs.txt
		say "FAILED; the reports are in chaos-report.json (and hostile-report.json) and the fleet's logs in chaos-logs.txt"
		exit "$rc"
	fi
	say "passed"
}

main "$@"
