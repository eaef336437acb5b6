#!/usr/bin/env bash
# Makes the test report (make report): on the fleet that ./start.sh brought
# up (project kvfleet, port 8000), it runs the project's own tools one after
# another, each recorded in docs/report/run.json (command, time, exit
# status):
#
#   machine     the machine and the fleet's images            machine.json
#   e2e         the end-to-end suite through nginx            e2e.json
#   reference   etcd and one Redis on loopback, then stopped  reference.json
#   bench       the fleet benchmark (make bench-fleet)        bench.json, bench.txt
#   chaos       the chaos suite (make chaos)                  chaos.json, chaos.txt
#   autoscale   the autoscaling test, on the same fleet         autoscale.json
#
# then draws the charts (docs/report/img) and writes docs/report.md, and
# updates the README's headline block. A tool that fails does not stop the
# others; its section of the report says it has no fresh result, and the
# script exits 1 at the end.
#
#   scripts/report.sh            the full run (about 40 minutes)
#   scripts/report.sh --quick    the short schedules (under 10 minutes)
#   scripts/report.sh --skip autoscale --skip chaos
#   scripts/report.sh --render   only redraw and rewrite from the JSON files
#
# Every tool sends load only to 127.0.0.1 and is bounded in time. The e2e
# suite kills one API replica and starts it again; the chaos suite injects
# faults into the project's containers and heals them. To keep two load
# runs from sharing the machine, run it under flock:
#   flock /tmp/kvfleet-load.lock scripts/report.sh --quick
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh

readonly DIR=docs/report
readonly BIN=bin
readonly E2E_PACKAGE=github.com/kvfleet/kvfleet/internal/e2e
export KVFLEET_PROJECT=${KVFLEET_PROJECT:-kvfleet}
export KVFLEET_PORT=${KVFLEET_PORT:-8000}
export KVFLEET_E2E_URL=http://127.0.0.1:$KVFLEET_PORT
export KVFLEET_E2E_PROJECT=$KVFLEET_PROJECT

say() { printf '==> report: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

quick=false
render_only=false
skips=()
failed=()

parse_args() {
	while (($# > 0)); do
		case $1 in
		--quick | -quick) quick=true ;;
		--render) render_only=true ;;
		--skip)
			(($# >= 2)) || die "--skip needs a step name"
			skips+=("$2")
			shift
			;;
		-h | --help)
			usage
			exit 0
			;;
		*) die "unknown argument $1 (see scripts/report.sh --help)" ;;
		esac
		shift
	done
}

build() {
	say "building the tools"
	mkdir -p "$BIN"
	CGO_ENABLED=0 go build -trimpath -o "$BIN/" ./cmd/kvfleet-bench ./cmd/kvfleet-refserver ./cmd/kvfleet-chaos ./cmd/kvfleet-autoscale ./cmd/kvfleet-report
	# The e2e suite is compiled here so that its step times the tests only.
	go test -c -tags e2e -o "$BIN/kvfleet-e2e.test" ./internal/e2e/
}

# check_fleet fails early, with what to do, when the fleet is not up.
check_fleet() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$KVFLEET_PORT/health" || true)
	if [[ $code != 200 ]]; then
		die "the fleet does not answer on 127.0.0.1:$KVFLEET_PORT (/health: ${code:-no answer}); start it with ./start.sh"
	fi
}

# ensure_etcd installs Debian's etcd-server for the reference measurement
# when it is missing and we are root, with its system service kept from
# starting; otherwise the report says etcd was not measured.
ensure_etcd() {
	if command -v etcd >/dev/null || [[ -x /usr/bin/etcd ]]; then
		return
	fi
	if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
		say "etcd is not installed (sudo apt-get install etcd-server); the report will say it was not measured"
		return
	fi
	say "installing etcd-server for the reference measurement"
	local policy=/usr/sbin/policy-rc.d made=false
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		made=true
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null ||
		say "warning: installing etcd-server failed; the report will say etcd was not measured"
	if [[ $made == true ]]; then rm -f "$policy"; fi
	if command -v service >/dev/null; then service etcd stop >/dev/null 2>&1 || true; fi
}

skipped() {
	local s
	for s in "${skips[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}

# step NAME CMD...: runs one tool through kvfleet-report, which records it.
step() {
	local name=$1
	shift
	if skipped "$name"; then
		"$BIN/kvfleet-report" step -name "$name" -skip "--skip $name was given" -- "$@"
		return
	fi
	say "step $name: $*"
	if ! "$BIN/kvfleet-report" step -name "$name" -- "$@"; then
		failed+=("$name")
	fi
}

run_e2e() {
	local events
	events=$(mktemp)
	step e2e go tool test2json -t -p "$E2E_PACKAGE" "$BIN/kvfleet-e2e.test" -test.v=test2json -test.count=1 >"$events"
	if ! skipped e2e; then
		"$BIN/kvfleet-report" e2e -in "$events" || failed+=("e2e (events)")
	fi
	rm -f "$events"
}

# run_autoscale runs the autoscaling test on the report's fleet, which
# must be at the scaler's minimum (3 API replicas, 2 consumers: what
# ./start.sh brings up) and have no scaler service of its own; the test
# checks both before it starts. The quick report uses the brief schedule
# (about 3 minutes); CI runs the quick one on a fleet of its own (make
# autoscale-test).
run_autoscale() {
	local -a flags=(-schedule full)
	if [[ $quick == true ]]; then flags=(-schedule brief -keys 5000); fi
	step autoscale "$BIN/kvfleet-autoscale" "${flags[@]}" -report "$DIR/autoscale.json"
}

main() {
	parse_args "$@"
	if [[ $render_only == true ]]; then
		go run ./cmd/kvfleet-report render
		return
	fi
	local mode=full
	# The full run's curves step every 6 s rather than the benchmark's
	# default 10 s: the curves are most of the benchmark's time, and 6 s
	# holds at least 30 requests even at the curve's floor of 5/s, so the
	# whole report stays under 45 minutes on two cores.
	local -a bench=(-curve-step 6s) chaos=() ref=()
	if [[ $quick == true ]]; then
		mode=quick
		# The benchmark's quick schedule with a short idle window, shorter
		# phases and smaller broker runs, so that the whole report stays
		# under ten minutes on two cores.
		bench=(-quick -idle 15s -duration 5s -warmup 1s -curve-step 3s -broker-messages 10000 -backlog-messages 20000)
		chaos=(--quick)
		ref=(-quick)
	fi
	check_fleet
	# The autoscaling test changes the fleet with the Compose command that
	# start.sh uses.
	COMPOSE=()
	find_compose || die "no Compose command (see above)"
	export KVFLEET_COMPOSE="${COMPOSE[*]}"
	build
	ensure_etcd
	"$BIN/kvfleet-report" start -mode "$mode"
	step machine "$BIN/kvfleet-report" machine
	run_e2e
	step reference "$BIN/kvfleet-report" reference "${ref[@]}"
	step bench "$BIN/kvfleet-bench" "${bench[@]}" -report "$DIR/bench.json" > >(tee "$DIR/bench.txt")
	step chaos "$BIN/kvfleet-chaos" "${chaos[@]}" -report "$DIR/chaos.json" > >(tee "$DIR/chaos.txt")
	run_autoscale
	"$BIN/kvfleet-report" finish
	"$BIN/kvfleet-report" render
	if ((${#failed[@]} > 0)); then
		say "done, but these steps failed: ${failed[*]} (see above; the report says which sections have no fresh result)"
		exit 1
	fi
	say "done: docs/report.md"
}

main "$@"
