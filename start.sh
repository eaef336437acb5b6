#!/usr/bin/env bash
# Brings up the kvfleet fleet with Docker Compose and proves it works.
#
#   ./start.sh                 build, start (or update) the fleet, run the smoke tests
#   ./start.sh --down          stop the fleet, keeping its data volumes
#   ./start.sh --down --volumes  stop it and delete its data
#   ./start.sh --logs          print the last log lines of every service
#
# Settings (environment or .env): KVFLEET_DB=cockroach|postgres,
# KVFLEET_PORT (8000), KVFLEET_BIND (127.0.0.1), KVFLEET_API_REPLICAS (3),
# KVFLEET_CONSUMER_REPLICAS (2), KVFLEET_START_TIMEOUT (600 seconds),
# KVFLEET_COMPOSE ("docker compose" or "docker-compose"; found by default).
#
# On first run it writes .env with random secrets (kept on later runs).
# When no container registry is reachable it builds stand-in images from
# Debian's packages and runs the PostgreSQL profile without Grafana, and
# says so.
set -euo pipefail
cd "$(dirname "$0")"

# A second fleet (the e2e tests) can run beside the first with its own
# project name, env file and port.
readonly ENV_FILE=${KVFLEET_ENV_FILE:-.env}
readonly PROJECT=${KVFLEET_PROJECT:-kvfleet}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'start.sh: %s\n' "$*" >&2
	exit 1
}

# --- prerequisites ----------------------------------------------------------

COMPOSE=()
find_compose() {
	if [[ -n ${KVFLEET_COMPOSE:-} ]]; then
		# An explicit choice, e.g. KVFLEET_COMPOSE=docker-compose for v1.
		read -r -a COMPOSE <<<"$KVFLEET_COMPOSE"
	elif docker compose version >/dev/null 2>&1; then
		COMPOSE=(docker compose)
	elif command -v docker-compose >/dev/null && docker-compose version >/dev/null 2>&1; then
		COMPOSE=(docker-compose)
		if command -v go >/dev/null; then
			note "only the old docker-compose (v1) is installed; building the Compose v2 plugin (scripts/install-compose.sh)"
			if scripts/install-compose.sh; then
				COMPOSE=(docker compose)
			else
				note "could not build Compose v2; continuing with docker-compose v1"
			fi
		fi
	elif command -v go >/dev/null; then
		scripts/install-compose.sh
		COMPOSE=(docker compose)
	else
		die "Docker Compose is missing: install the Compose plugin (apt-get install docker-compose-plugin) or docker-compose"
	fi
}

check_prerequisites() {
	command -v docker >/dev/null || die "Docker is not installed; see https://docs.docker.com/engine/install/"
	docker info >/dev/null 2>&1 || die "the Docker engine is not reachable; start it (systemctl start docker) or check that you may use it (the docker group)"
	command -v curl >/dev/null || die "curl is missing; run: apt-get install -y curl"
	find_compose
	note "using: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -n1))"
}

compose() { "${COMPOSE[@]}" --project-name "$PROJECT" --env-file "$ENV_FILE" "$@"; }

# port_free PORT: nothing listens on 127.0.0.1:PORT, or our own nginx does.
port_free() {
	local port=$1
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		return 0
	fi
	docker ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Ports}}' | grep -q ":$port->"
}

# --- .env: secrets and settings ------------------------------------------------

secret() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

# env_get NAME: the value in .env, if any.
env_get() { sed -n "s/^$1=//p" "$ENV_FILE" 2>/dev/null | tail -n1; }

# env_default NAME VALUE: adds NAME=VALUE to .env unless NAME is there.
env_default() {
	grep -q "^$1=" "$ENV_FILE" 2>/dev/null || printf '%s=%s\n' "$1" "$2" >>"$ENV_FILE"
}

# env_set NAME VALUE: sets NAME in .env, replacing an earlier value.
env_set() {
	local tmp
	tmp=$(mktemp)
	grep -v "^$1=" "$ENV_FILE" >"$tmp" 2>/dev/null || true
	printf '%s=%s\n' "$1" "$2" >>"$tmp"
	cat "$tmp" >"$ENV_FILE"
	rm -f "$tmp"
}

write_env() {
	if [[ ! -f $ENV_FILE ]]; then
		(umask 077 && printf '# Written by start.sh: secrets of this fleet. Keep private; git ignores it.\n' >"$ENV_FILE")
		note "generated random credentials into $ENV_FILE"
	fi
	env_default COMPOSE_PROJECT_NAME "$PROJECT"
	if [[ -n ${KVFLEET_PORT:-} ]]; then env_set KVFLEET_PORT "$KVFLEET_PORT"; fi
	env_default KVFLEET_REDIS_PASSWORD "$(secret)"
	env_default KVFLEET_REDIS_SENTINEL_PASSWORD "$(secret)"
	env_default KVFLEET_DB_PASSWORD "$(secret)"
	env_default KVFLEET_RABBITMQ_PASSWORD "$(secret)"
	env_default KVFLEET_RABBITMQ_COOKIE "$(secret)"
	env_default KVFLEET_GRAFANA_PASSWORD "$(secret)"
}

# --- images -----------------------------------------------------------------

# The official images the compose file defaults to, by variable.
declare -A OFFICIAL=(
	[KVFLEET_REDIS_IMAGE]=redis:7.2-bookworm
	[KVFLEET_RABBITMQ_IMAGE]=rabbitmq:3.13-management
	[KVFLEET_POSTGRES_IMAGE]=postgres:16-bookworm
	[KVFLEET_NGINX_IMAGE]=nginx:1.27-bookworm
	[KVFLEET_HAPROXY_IMAGE]=haproxy:2.8-bookworm
	[KVFLEET_PROMETHEUS_IMAGE]=prom/prometheus:v2.53.2
	[KVFLEET_COCKROACH_IMAGE]=cockroachdb/cockroach:v24.3.5
	[KVFLEET_GRAFANA_IMAGE]=grafana/grafana:11.2.2
)
# Their Debian stand-ins (no CockroachDB or Grafana: Debian packages neither).
declare -A STANDIN=(
	[KVFLEET_REDIS_IMAGE]=kvfleet-standin/redis:bookworm
	[KVFLEET_RABBITMQ_IMAGE]=kvfleet-standin/rabbitmq:bookworm
	[KVFLEET_POSTGRES_IMAGE]=kvfleet-standin/postgres:bookworm
	[KVFLEET_NGINX_IMAGE]=kvfleet-standin/nginx:bookworm
	[KVFLEET_HAPROXY_IMAGE]=kvfleet-standin/haproxy:bookworm
	[KVFLEET_PROMETHEUS_IMAGE]=kvfleet-standin/prometheus:bookworm
)

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# registry_reachable: one bounded pull of a small official image decides.
registry_reachable() {
	image_present "${OFFICIAL[KVFLEET_HAPROXY_IMAGE]}" && return 0
	timeout 60 docker pull -q "${OFFICIAL[KVFLEET_HAPROXY_IMAGE]}" >/dev/null 2>&1
}

choose_images() {
	local mode
	mode=$(env_get KVFLEET_IMAGES)
	if [[ -z $mode ]]; then
		say "checking for a container registry"
		if registry_reachable; then mode=official; else mode=standin; fi
		env_set KVFLEET_IMAGES "$mode"
	fi
	local var
	if [[ $mode == official ]]; then
		for var in "${!OFFICIAL[@]}"; do env_default "$var" "${OFFICIAL[$var]}"; done
		env_default KVFLEET_DB "${KVFLEET_DB:-cockroach}"
		local db
		db=$(env_get KVFLEET_DB)
		env_set COMPOSE_PROFILES "$db,grafana"
		GRAFANA=yes
		return
	fi
	say "no container registry is reachable: using stand-in images built from Debian's packages"
	note "CockroachDB and Grafana have no Debian package: this fleet runs the PostgreSQL profile, without Grafana"
	scripts/build-standin-images.sh
	for var in "${!STANDIN[@]}"; do env_set "$var" "${STANDIN[$var]}"; done
	env_set KVFLEET_DB postgres
	env_set COMPOSE_PROFILES postgres
	GRAFANA=no
}

# quietly runs a command and shows its output only if it fails.
quietly() {
	local log rc=0
	log=$(mktemp)
	"$@" >"$log" 2>&1 || rc=$?
	((rc == 0)) || cat "$log" >&2
	rm -f "$log"
	return "$rc"
}

build_app_image() {
	say "building the API and consumer image (kvfleet:local)"
	if command -v go >/dev/null; then
		make --no-print-directory build >/dev/null
		quietly docker build -q -f deploy/prebuilt.Dockerfile -t kvfleet:local .
	else
		quietly docker build -q -f deploy/Dockerfile -t kvfleet:local .
	fi
}

# --- bring-up -----------------------------------------------------------------

# fleet_status prints "name status" for each container of the project.
fleet_status() {
	docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
		--format '{{.Label "com.docker.compose.service"}}#{{.Label "com.docker.compose.container-number"}} {{.Status}}'
}

# container_of SERVICE#NUMBER: the container's id (Compose v1 and v2 name
# containers differently; their labels are the same).
container_of() {
	docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
		--filter "label=com.docker.compose.service=${1%#*}" \
		--filter "label=com.docker.compose.container-number=${1#*#}" | head -n1
}

# fleet_state prints "ready total waiting... | failed..." for the project's
# containers: long-running ones count when healthy, one-shot jobs when they
# exited 0.
fleet_state() {
	local total=0 ready=0 waiting=() failed=() name status
	while read -r name status; do
		[[ -z $name ]] && continue
		total=$((total + 1))
		case $status in
		*"(healthy)"*) ready=$((ready + 1)) ;;
		"Exited (0)"*)
			case $name in
			migrate#* | cockroach-certs#* | cockroach-init#*) ready=$((ready + 1)) ;;
			*) failed+=("$name") ;;
			esac
			;;
		"Exited"* | *"(unhealthy)"* | Dead* | Restarting*) failed+=("$name") ;;
		*) waiting+=("$name") ;;
		esac
	done < <(fleet_status)
	printf '%s %s %s|%s\n' "$ready" "$total" "${waiting[*]}" "${failed[*]}"
}

# report_culprits names the services that are not ready and prints their
# last log lines.
report_culprits() {
	local c
	for c in "$@"; do
		printf -- '--- last log lines of %s ---\n' "${c%#1}" >&2
		docker logs --tail 30 "$(container_of "$c")" 2>&1 | sed 's/^/    /' >&2 || true
	done
}

# bring_up runs `compose up` until every container is ready, printing a
# progress line whenever it changes. Compose gives up at once when a
# dependency is unhealthy, which a restarting RabbitMQ node or database may
# be for a while, so up is retried until the deadline.
bring_up() {
	local api=${KVFLEET_API_REPLICAS:-3} consumers=${KVFLEET_CONSUMER_REPLICAS:-2}
	local timeout=${KVFLEET_START_TIMEOUT:-600}
	local deadline=$((SECONDS + timeout)) last="" up_pid="" up_done=false up_log=".$PROJECT-up.log"
	say "starting the fleet ($api API replicas, $consumers consumers, database: $(env_get KVFLEET_DB))"
	while :; do
		if [[ -z $up_pid ]] && ! $up_done; then
			compose up -d --remove-orphans --scale "api=$api" --scale "consumer=$consumers" >"$up_log" 2>&1 &
			up_pid=$!
		fi
		local state ready total waiting failed
		state=$(fleet_state)
		read -r ready total _ <<<"${state%%|*}"
		waiting=${state#* * }
		waiting=${waiting%%|*}
		failed=${state#*|}
		local line="    $ready/$total ready${waiting:+; starting: ${waiting//#1/}}${failed:+; failing: ${failed//#1/}}"
		[[ $line != "$last" ]] && printf '%s\n' "$line" && last=$line
		if [[ -n $up_pid ]] && ! kill -0 "$up_pid" 2>/dev/null; then
			if wait "$up_pid"; then
				up_done=true
			else
				printf '    compose up: %s (retrying)\n' "$(tail -n1 "$up_log")"
			fi
			up_pid=""
		fi
		$up_done && ((total > 0 && ready == total)) && break
		if ((SECONDS >= deadline)); then
			printf '\nstart.sh: not ready after %ss:%s%s\n' "$timeout" "${waiting:+ starting: $waiting}" "${failed:+ failing: $failed}" >&2
			tail -n 5 "$up_log" >&2
			# shellcheck disable=SC2086 # word splitting wanted: a list of names.
			report_culprits $waiting $failed
			die "see above; fix the cause and run ./start.sh again (it is safe to re-run)"
		fi
		sleep 2
	done
	rm -f "$up_log"
	# Nginx resolves "api" when it loads its configuration: reload it so that
	# it balances over exactly the replicas running now.
	compose exec -T nginx nginx -c /etc/kvfleet/nginx.conf -s reload >/dev/null 2>&1
}

summary() {
	local port=${KVFLEET_PORT:-8000}
	cat <<MSG

kvfleet is up.
  API         http://127.0.0.1:$port/   (curl "http://127.0.0.1:$port/?key=teste")
  health      http://127.0.0.1:$port/health
  Prometheus  http://127.0.0.1:${KVFLEET_PROMETHEUS_PORT:-9090}/
  RabbitMQ UI http://127.0.0.1:${KVFLEET_RABBITMQ_UI_PORT:-15672}/   (user kvfleet, password KVFLEET_RABBITMQ_PASSWORD in $ENV_FILE)
MSG
	if [[ $GRAFANA == yes ]]; then
		printf '  Grafana     http://127.0.0.1:%s/   (user admin, password KVFLEET_GRAFANA_PASSWORD in %s)\n' "${KVFLEET_GRAFANA_PORT:-3000}" "$ENV_FILE"
	else
		printf '  Grafana     not running (no image without a registry)\n'
	fi
	cat <<MSG
  credentials $PWD/$ENV_FILE
  logs        ${COMPOSE[*]} --project-name $PROJECT logs -f api consumer
  stop        ./start.sh --down   (add --volumes to delete the data)
MSG
}

main() {
	check_prerequisites
	if [[ ${1:-} == --logs ]]; then
		compose --profile cockroach --profile postgres --profile grafana logs --no-color --tail 200
		return
	fi
	if [[ ${1:-} == --down ]]; then
		say "stopping the fleet"
		if [[ ${2:-} == --volumes ]]; then
			compose --profile cockroach --profile postgres --profile grafana down --volumes --remove-orphans
		else
			compose --profile cockroach --profile postgres --profile grafana down --remove-orphans
		fi
		return
	fi
	port_free "${KVFLEET_PORT:-8000}" || die "port ${KVFLEET_PORT:-8000} is in use by another program; stop it or set KVFLEET_PORT"
	write_env
	GRAFANA=no
	choose_images
	build_app_image
	bring_up
	say "smoke tests through nginx"
	scripts/smoke-test.sh "http://127.0.0.1:${KVFLEET_PORT:-8000}"
	summary
}

main "$@"
