#!/usr/bin/env bash
# Makes `docker compose` (the Compose v2 CLI plugin) available. When the
# plugin is missing, it is built from source through the Go module proxy,
# inside the module's own directory (its go.mod has replace directives, so
# `go install pkg@version` cannot build it), and installed as a Docker CLI
# plugin for this user. Takes about three minutes on two cores.
#
# Usage: scripts/install-compose.sh   (prints nothing but progress; exit 0 when `docker compose` works)
set -euo pipefail

readonly COMPOSE_MODULE=github.com/docker/compose/v2
readonly COMPOSE_VERSION=${KVFLEET_COMPOSE_VERSION:-v2.40.3}
readonly PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

say() { printf 'compose: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

main() {
	if docker compose version >/dev/null 2>&1; then
		say "$(docker compose version)"
		return
	fi
	command -v go >/dev/null || die "Go is needed to build the Compose plugin; install Go 1.26 or newer"
	say "building Compose $COMPOSE_VERSION from the Go module proxy (about 3 minutes)"
	local src work
	src=$(go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -d $src ]] || die "could not download $COMPOSE_MODULE@$COMPOSE_VERSION"
	work=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now: the path is fixed.
	trap "rm -rf '$work'" EXIT
	cp -r "$src/." "$work/"
	chmod -R u+w "$work"
	if ! (
		cd "$work"
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
			-o "$work/docker-compose" ./cmd
	) >"$work/build.log" 2>&1; then
		tail -n 40 "$work/build.log" >&2
		die "building Compose failed (output above)"
	fi
	mkdir -p "$PLUGIN_DIR"
	install -m 0755 "$work/docker-compose" "$PLUGIN_DIR/docker-compose"
	docker compose version >/dev/null || die "the plugin was built but 'docker compose version' fails"
	say "installed $(docker compose version) into $PLUGIN_DIR"
}

main "$@"
