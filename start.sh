#!/usr/bin/env bash
# Brings up the kvfleet fleet with Docker Compose and proves it works.
# Usage: see usage() below, or ./start.sh --help.
#
# On first run it writes .env with random secrets; later runs keep them and
# add any secret a newer version needs. Image tags come from
# deploy/images.env. When no container registry is reachable it builds
# stand-in images from Debian's packages and runs the PostgreSQL profile
# without Grafana, and says so.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=scripts/lib/compose.sh
source scripts/lib/compose.sh
# shellcheck source=scripts/lib/images.sh
source scripts/lib/images.sh

usage() {
	cat <<'USAGE'
Usage: ./start.sh [--autoscale | --down [--volumes] | --logs | --help]

  (no argument)        build, start (or update) the fleet, run the smoke tests
  --autoscale          the same, with the autoscaler as a service of the fleet
                       (profile autoscale: Prometheus scrapes it; it uses the
                       Docker socket); a later run without it removes it
  --down               stop the fleet, keeping its data volumes
  --down --volumes     stop it and delete its data
  --logs               print the last log lines of every service
  -h, --help           print this help

Settings (environment or .env): KVFLEET_DB=cockroach|postgres,
KVFLEET_PORT (8000), KVFLEET_BIND (127.0.0.1), KVFLEET_API_REPLICAS (3),
KVFLEET_CONSUMER_REPLICAS (2), KVFLEET_START_TIMEOUT (600 seconds),
KVFLEET_COMPOSE ("docker compose" or "docker-compose"; found by default),
KVFLEET_APP_IMAGE (an API/consumer image to run instead of building
kvfleet:local from the source).
USAGE
}

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

# COMPOSE is set by find_compose (scripts/lib/compose.sh).
COMPOSE=()

check_prerequisites() {
	command -v docker >/dev/null || die "Docker is not installed; see https://docs.docker.com/engine/install/"
	docker info >/dev/null 2>&1 || die "the Docker engine is not reachable; start it (systemctl start docker) or check that you may use it (the docker group)"
	command -v curl >/dev/null || die "curl is missing; run: apt-get install -y curl"
	find_compose || die "no usable Docker Compose (see above)"
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
	# Each secret is added when missing, also to an older .env, so that a
	# fleet started by an earlier version gets the ones added since.
	env_default KVFLEET_REDIS_PASSWORD "$(secret)"
	env_default KVFLEET_REDIS_SENTINEL_PASSWORD "$(secret)"
	# The database owner (schema migrations) and the applications' own
	# user, which may only read and write the tables.
	env_default KVFLEET_DB_PASSWORD "$(secret)"
	env_default KVFLEET_DB_APP_PASSWORD "$(secret)"
	# The PostgreSQL exporter's role (pg_monitor: statistics, no rows).
	env_default KVFLEET_DB_MONITOR_PASSWORD "$(secret)"
	# The applications' RabbitMQ user, and the management UI's admin.
	env_default KVFLEET_RABBITMQ_PASSWORD "$(secret)"
	env_default KVFLEET_RABBITMQ_ADMIN_PASSWORD "$(secret)"
	env_default KVFLEET_RABBITMQ_COOKIE "$(secret)"
	env_default KVFLEET_GRAFANA_PASSWORD "$(secret)"
}

# --- images -----------------------------------------------------------------

# The role of each image that has a Debian stand-in (CockroachDB and
# Grafana have none: Debian packages neither); the stand-in of role R is
# kvfleet-standin/R:<KVFLEET_STANDIN_SUITE> (deploy/images.env).
declare -A STANDIN_ROLE=(
	[KVFLEET_REDIS_IMAGE]=redis
	[KVFLEET_RABBITMQ_IMAGE]=rabbitmq
	[KVFLEET_POSTGRES_IMAGE]=postgres
	[KVFLEET_NGINX_IMAGE]=nginx
	[KVFLEET_HAPROXY_IMAGE]=haproxy
	[KVFLEET_PROMETHEUS_IMAGE]=prometheus
	[KVFLEET_REDIS_EXPORTER_IMAGE]=redis-exporter
	[KVFLEET_POSTGRES_EXPORTER_IMAGE]=postgres-exporter
	[KVFLEET_ALERTMANAGER_IMAGE]=alertmanager
)

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# registry_reachable: one bounded pull of a small official image decides.
registry_reachable() {
	local probe
	probe=$(pinned_image KVFLEET_HAPROXY_IMAGE) || die "deploy/images.env is incomplete"
	image_present "$probe" && return 0
	timeout 60 docker pull -q "$probe" >/dev/null 2>&1
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
	# Every image variable gets its pinned tag on every run, so that .env
	# follows deploy/images.env; Compose needs all of them, also those of
	# profiles that are not running. (A variable set in the environment
	# still overrides .env.)
	for var in $(pinned_image_names); do
		env_set "$var" "$(pinned_image "$var")" || die "deploy/images.env is incomplete"
	done
	if [[ $mode == official ]]; then
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
	local suite
	suite=$(pinned_image KVFLEET_STANDIN_SUITE) || die "deploy/images.env is incomplete"
	for var in "${!STANDIN_ROLE[@]}"; do env_set "$var" "kvfleet-standin/${STANDIN_ROLE[$var]}:$suite"; done
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
	if [[ -n ${KVFLEET_APP_IMAGE:-} ]]; then
		image_present "$KVFLEET_APP_IMAGE" || die "KVFLEET_APP_IMAGE=$KVFLEET_APP_IMAGE is not a local image; build or pull it, or unset KVFLEET_APP_IMAGE"
		say "using the API and consumer image $KVFLEET_APP_IMAGE (KVFLEET_APP_IMAGE; not building)"
		return
	fi
	say "building the API and consumer image (kvfleet:local)"
	if command -v go >/dev/null; then
		make --no-print-directory build >/dev/null
		quietly docker build -q -f deploy/prebuilt.Dockerfile -t kvfleet:local .
	else
		local go_image
		go_image=$(pinned_image KVFLEET_GO_IMAGE) || die "deploy/images.env is incomplete"
		quietly docker build -q --build-arg "GO_IMAGE=$go_image" -f deploy/Dockerfile -t kvfleet:local .
	fi
}

# --- the autoscaler as a fleet service -----------------------------------------

# compose_plugin prints the path of the Compose v2 CLI plugin that the
# docker command on this machine runs.
compose_plugin() {
	local path
	path=$(docker info --format '{{range .ClientInfo.Plugins}}{{if eq .Name "compose"}}{{.Path}}{{end}}{{end}}' 2>/dev/null)
	[[ -n $path && -x $path ]] && printf '%s\n' "$path"
}

# build_scaler_image builds kvfleet-scaler:local (deploy/scaler.Dockerfile):
# the scaler with a Docker CLI and the Compose plugin. Where images can be
# pulled its base is docker:<version>-cli, which carries both; with the
# stand-ins it is their Debian base with this machine's own docker CLI and
# Compose plugin copied in, which must then run there (checked).
build_scaler_image() {
	command -v go >/dev/null || die "--autoscale needs Go to build the scaler; install Go 1.26, or run ./monitor-scale.sh beside the fleet"
	say "building the autoscaler's image (kvfleet-scaler:local)"
	make --no-print-directory scaler >/dev/null
	local ctx base plugin
	ctx=$(mktemp -d)
	mkdir -p "$ctx/cli"
	cp bin/kvfleet-scaler "$ctx/"
	if [[ $(env_get KVFLEET_IMAGES) == official ]]; then
		base=$(pinned_image KVFLEET_SCALER_BASE_IMAGE) || die "deploy/images.env is incomplete"
	else
		base=kvfleet-standin/base:$(pinned_image KVFLEET_STANDIN_SUITE) || die "deploy/images.env is incomplete"
		plugin=$(compose_plugin) || die "--autoscale with stand-in images needs the Compose v2 plugin (scripts/install-compose.sh) to copy into the scaler's image"
		mkdir -p "$ctx/cli/bin" "$ctx/cli/libexec/docker/cli-plugins"
		cp "$(command -v docker)" "$ctx/cli/bin/docker"
		cp "$plugin" "$ctx/cli/libexec/docker/cli-plugins/docker-compose"
	fi
	quietly docker build -q --build-arg "BASE=$base" -f deploy/scaler.Dockerfile -t kvfleet-scaler:local "$ctx"
	rm -rf "$ctx"
	docker run --rm --entrypoint docker kvfleet-scaler:local compose version >/dev/null 2>&1 ||
		die "the Docker CLI or Compose plugin does not run in kvfleet-scaler:local (built from $base); run ./monitor-scale.sh beside the fleet instead"
}

# configure_scaler adds the autoscaler to the fleet (--autoscale), or
# removes one that an earlier --autoscale run left.
configure_scaler() {
	if [[ $AUTOSCALE == yes ]]; then
		# Compose in the scaler's container finds the project where it is
		# on the host (the repository is mounted at the same path).
		env_set KVFLEET_REPO_DIR "$PWD"
		env_set KVFLEET_SCALER_ENV_FILE "$ENV_FILE"
		env_set COMPOSE_PROFILES "$(env_get COMPOSE_PROFILES),autoscale"
		build_scaler_image
		return
	fi
	if [[ -n $(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=scaler) ]]; then
		say "removing the autoscaler service (run ./start.sh --autoscale to keep it)"
		compose --profile autoscale rm --stop --force scaler >/dev/null 2>&1 || true
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
	compose exec -T nginx nginx -c /etc/kvfleet/nginx/nginx.conf -s reload >/dev/null 2>&1
	# Prometheus reads its configuration and rules (bind-mounted) only when
	# it starts or is told to: a re-run after an update of them must apply
	# them to the running Prometheus too.
	compose kill -s HUP prometheus >/dev/null 2>&1 || true
}

summary() {
	local port=${KVFLEET_PORT:-8000}
	cat <<MSG

kvfleet is up.
  API         http://127.0.0.1:$port/   (curl "http://127.0.0.1:$port/?key=teste")
  health      http://127.0.0.1:$port/health
  Prometheus  http://127.0.0.1:${KVFLEET_PROMETHEUS_PORT:-9090}/
  RabbitMQ UI http://127.0.0.1:${KVFLEET_RABBITMQ_UI_PORT:-15672}/   (user admin, password KVFLEET_RABBITMQ_ADMIN_PASSWORD in $ENV_FILE)
MSG
	if [[ $AUTOSCALE == yes ]]; then
		printf '  autoscaler  a fleet service: %s --project-name %s logs -f scaler; metrics kvfleet_scaler_* in Prometheus\n' "${COMPOSE[*]}" "$PROJECT"
	fi
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

# bad_usage MESSAGE: says what is wrong, prints the usage, exits 2.
bad_usage() {
	printf 'start.sh: %s\n\n' "$1" >&2
	usage >&2
	exit 2
}

main() {
	# The arguments are checked before anything is touched: a mistyped
	# option must not bring the fleet up.
	local action
	AUTOSCALE=no
	case "$#:${1-}:${2-}" in
	0::) action=up ;;
	1:--autoscale:)
		action=up
		AUTOSCALE=yes
		;;
	1:-h: | 1:--help:)
		usage
		return
		;;
	1:--logs:) action=logs ;;
	1:--down:) action=down ;;
	2:--down:--volumes) action=down-volumes ;;
	*) bad_usage "unknown arguments: $*" ;;
	esac
	check_prerequisites
	case $action in
	logs)
		compose --profile cockroach --profile postgres --profile grafana --profile autoscale logs --no-color --tail 200
		return
		;;
	down | down-volumes)
		say "stopping the fleet"
		if [[ $action == down-volumes ]]; then
			compose --profile cockroach --profile postgres --profile grafana --profile autoscale down --volumes --remove-orphans
		else
			compose --profile cockroach --profile postgres --profile grafana --profile autoscale down --remove-orphans
		fi
		return
		;;
	esac
	port_free "${KVFLEET_PORT:-8000}" || die "port ${KVFLEET_PORT:-8000} is in use by another program; stop it or set KVFLEET_PORT"
	write_env
	GRAFANA=no
	choose_images
	build_app_image
	configure_scaler
	bring_up
	say "smoke tests through nginx"
	scripts/smoke-test.sh "http://127.0.0.1:${KVFLEET_PORT:-8000}"
	summary
}

main "$@"
