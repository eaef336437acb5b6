# shellcheck shell=bash
# Sourced by start.sh and scripts/e2e.sh: the one choice of the Compose
# command, so that both use the same one.

# find_compose sets the array COMPOSE to the Compose command: the value of
# KVFLEET_COMPOSE when set (e.g. KVFLEET_COMPOSE=docker-compose for v1),
# else the v2 plugin, else the old docker-compose (building the v2 plugin
# first when Go is there), else it builds the v2 plugin. It fails with what
# to install when there is no way to get one.
# shellcheck disable=SC2034 # COMPOSE is for the script that sources this.
find_compose() {
	local install
	install="${BASH_SOURCE[0]%/*}/../install-compose.sh"
	COMPOSE=()
	if [[ -n ${KVFLEET_COMPOSE:-} ]]; then
		read -r -a COMPOSE <<<"$KVFLEET_COMPOSE"
		if ! "${COMPOSE[@]}" version >/dev/null 2>&1; then
			printf '%s: KVFLEET_COMPOSE="%s" does not work (its "version" fails); set it to "docker compose" or "docker-compose", or unset it\n' "${0##*/}" "$KVFLEET_COMPOSE" >&2
			return 1
		fi
	elif docker compose version >/dev/null 2>&1; then
		COMPOSE=(docker compose)
	elif command -v docker-compose >/dev/null && docker-compose version >/dev/null 2>&1; then
		COMPOSE=(docker-compose)
		if command -v go >/dev/null; then
			printf '    only the old docker-compose (v1) is installed; building the Compose v2 plugin (scripts/install-compose.sh)\n'
			if "$install"; then
				COMPOSE=(docker compose)
			else
				printf '    could not build Compose v2; continuing with docker-compose v1\n'
			fi
		fi
	elif command -v go >/dev/null; then
		"$install" || return 1
		COMPOSE=(docker compose)
	else
		printf '%s: Docker Compose is missing: install the Compose plugin (apt-get install docker-compose-plugin) or docker-compose\n' "${0##*/}" >&2
		return 1
	fi
}
