#!/usr/bin/env bash
# Installs the servers that the integration tests start themselves
# (internal/localserver): Redis with Sentinel, PostgreSQL and RabbitMQ, from
# Debian's packages. The tests run their own instances on random loopback
# ports, so the packages' system services are not wanted: this script keeps
# them from starting and stops any that did.
#
# Idempotent: when everything is installed it only checks, needs no root and
# takes a fraction of a second.
set -euo pipefail

# procps gives the tests and their authors pgrep/ps to look at servers.
# prometheus gives promtool, which evaluates the autoscaler's queries and the
# alert rules in tests; prometheus-alertmanager gives amtool, which checks
# Alertmanager's configuration.
readonly PACKAGES=(redis-server redis-sentinel postgresql rabbitmq-server procps prometheus prometheus-alertmanager etcd-server)
# The system services those packages install, by service name.
readonly SERVICES=(redis-server redis-sentinel postgresql rabbitmq-server prometheus prometheus-alertmanager etcd)
readonly POLICY_RC_D=/usr/sbin/policy-rc.d

log() {
	printf 'install-test-deps: %s\n' "$*" >&2
}

die() {
	log "error: $*"
	exit 1
}

# missing_packages prints, one per line, the packages that are not installed.
missing_packages() {
	local pkg status
	for pkg in "${PACKAGES[@]}"; do
		# shellcheck disable=SC2016 # ${Status} is dpkg-query's field, not ours.
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		if [[ "$status" != "install ok installed" ]]; then
			printf '%s\n' "$pkg"
		fi
	done
}

require_debian() {
	if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
		die "apt-get/dpkg-query not found: this script supports Debian and its derivatives only; install ${PACKAGES[*]} with your system's package manager"
	fi
}

# require_root explains what to run when we cannot install ourselves.
require_root() {
	local -a missing=("$@")
	if ((EUID == 0)); then
		return
	fi
	log "missing packages: ${missing[*]}"
	log "installing them needs root; run:"
	log "  sudo $0"
	log "or install them yourself:"
	log "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
	exit 1
}

# deny_service_starts installs a policy-rc.d that forbids maintainer scripts
# to start services (Debian's documented mechanism; Docker images ship one),
# unless one is already there. It is removed again when the script exits.
deny_service_starts() {
	if [[ -e "$POLICY_RC_D" ]]; then
		return
	fi
	printf '#!/bin/sh\n# Temporary, from install-test-deps.sh: do not start services.\nexit 101\n' >"$POLICY_RC_D"
	chmod 0755 "$POLICY_RC_D"
	trap 'rm -f "$POLICY_RC_D"' EXIT
}

install_packages() {
	local -a missing=("$@")
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# stop_services stops, by service name, those of the packages' system
# services that run: a policy may have let them start, and they would hold
# memory and the default ports for nothing. Without root it only reports.
stop_services() {
	local svc
	if ! command -v service >/dev/null; then
		return
	fi
	for svc in "${SERVICES[@]}"; do
		if ! service "$svc" status >/dev/null 2>&1; then
			continue
		fi
		if ((EUID != 0)); then
			log "note: system service $svc is running; the tests do not need it (stop it with: sudo service $svc stop)"
			continue
		fi
		log "stopping system service $svc (the tests start their own servers)"
		service "$svc" stop >/dev/null 2>&1 || log "warning: could not stop $svc; stop it with: service $svc stop"
	done
}

# verify_binaries checks for the programs internal/localserver runs.
verify_binaries() {
	local bin
	for bin in redis-server redis-sentinel epmd promtool amtool; do
		command -v "$bin" >/dev/null || die "$bin not found after installing; check the apt-get output above"
	done
	if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
		die "no /usr/lib/postgresql/*/bin/initdb after installing postgresql"
	fi
	if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] && ! command -v rabbitmq-server >/dev/null; then
		die "rabbitmq-server not found after installing; check the apt-get output above"
	fi
}

main() {
	require_debian
	local -a missing
	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} == 0)); then
		stop_services
		log "all test dependencies are installed: ${PACKAGES[*]}"
		return
	fi
	require_root "${missing[@]}"
	deny_service_starts
	install_packages "${missing[@]}"
	stop_services
	verify_binaries
	log "done; run the integration tests with: go test -race ./..."
}

main "$@"
