#!/usr/bin/env bash
# Runs the end-to-end suite (internal/e2e) against a fleet of its own: it
# brings up a separate Compose project (kvfleet-e2e on port 18000, so a
# running fleet is left alone) with ./start.sh, runs the tests through
# nginx, saves the fleet's logs to e2e-logs.txt if anything fails, and
# tears the fleet and its volumes down.
#
# It uses the Compose command that start.sh uses (KVFLEET_COMPOSE, or the
# same search: scripts/lib/compose.sh). Without a reachable Docker engine it
# skips, except with CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh

export KVFLEET_PROJECT=kvfleet-e2e
export KVFLEET_ENV_FILE=.env.e2e
export KVFLEET_PORT=${KVFLEET_E2E_PORT:-18000}
export KVFLEET_RABBITMQ_UI_PORT=25672 KVFLEET_PROMETHEUS_PORT=19090 KVFLEET_GRAFANA_PORT=13000
export KVFLEET_E2E_URL=http://127.0.0.1:$KVFLEET_PORT
export KVFLEET_E2E_PROJECT=$KVFLEET_PROJECT

say() { printf '==> e2e: %s\n' "$*"; }

docker_reachable() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

teardown() {
	say "tearing the e2e fleet down"
	./start.sh --down --volumes >/dev/null 2>&1 || true
	rm -f "$KVFLEET_ENV_FILE"
}

main() {
	if ! docker_reachable; then
		if [[ ${CI:-} == true ]]; then
			printf 'e2e: FAILED: the Docker engine is not reachable, and CI must run the end-to-end tests\n' >&2
			exit 1
		fi
		say "SKIPPED: no reachable Docker engine (start Docker to run the end-to-end tests)"
		return
	fi
	COMPOSE=()
	find_compose || exit 1
	# start.sh then makes the same choice without searching again.
	export KVFLEET_COMPOSE="${COMPOSE[*]}"
	say "using: $KVFLEET_COMPOSE"
	trap teardown EXIT
	rm -f e2e-logs.txt
	./start.sh
	say "checking that the default (CockroachDB) profile's configuration is valid"
	"${COMPOSE[@]}" --project-name "$KVFLEET_PROJECT" --env-file "$KVFLEET_ENV_FILE" \
		--profile cockroach --profile grafana config -q
	say "running the suite against $KVFLEET_E2E_URL"
	local rc=0
	go test -tags e2e -count=1 -v ./internal/e2e/ || rc=$?
	if ((rc != 0)); then
		./start.sh --logs >e2e-logs.txt 2>&1 || true
		docker ps -a --filter "label=com.docker.compose.project=$KVFLEET_PROJECT" >>e2e-logs.txt
		say "FAILED; the fleet's logs are in e2e-logs.txt"
		exit "$rc"
	fi
	say "passed"
}

main "$@"
