#!/usr/bin/env bash
# Builds stand-in images for the fleet's third-party services from Debian's
# packages, for machines that have a Docker engine but no container
# registry. A Debian root file system is made with debootstrap (from the
# machine's own Debian mirror), imported with `docker import`, and then one
# small image per role adds that role's user, paths and PATH, so that the
# compose file's commands run unchanged on a stand-in and on the official
# image.
#
# Usage: scripts/build-standin-images.sh [--rebuild]
# Tags:  kvfleet-standin/<role>:<suite> for redis rabbitmq postgres nginx haproxy prometheus
#        redis-exporter postgres-exporter alertmanager, the suite being
#        KVFLEET_STANDIN_SUITE in deploy/images.env (bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/images.sh
source scripts/lib/images.sh

SUITE=$(pinned_image KVFLEET_STANDIN_SUITE)
readonly SUITE
readonly BASE_IMAGE=kvfleet-standin/base:$SUITE
readonly ROLES=(redis rabbitmq postgres nginx haproxy prometheus redis-exporter postgres-exporter alertmanager)
# One root file system carries every role's packages: a single debootstrap
# and a single imported layer that all role images share.
readonly PACKAGES=(
	bash ca-certificates curl wget procps netbase
	redis-server redis-sentinel redis-tools
	rabbitmq-server
	postgresql-15 postgresql-client-15
	nginx-light
	haproxy
	prometheus
	prometheus-redis-exporter prometheus-postgres-exporter prometheus-alertmanager
)
# The base records its package list in this label; a base made from
# another list (an older version of this script) is made again.
readonly PACKAGES_LABEL=org.kvfleet.standin.packages

say() { printf 'standin: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# debian_mirror prints the mirror this machine's apt uses, so that the
# build needs nothing apt cannot already reach.
debian_mirror() {
	if [[ -n ${KVFLEET_DEBIAN_MIRROR:-} ]]; then
		printf '%s\n' "$KVFLEET_DEBIAN_MIRROR"
		return
	fi
	local uri
	uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		grep -v security | head -n1 | awk '{print $2}') || true
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

require_tools() {
	command -v docker >/dev/null || die "docker is not installed"
	docker info >/dev/null 2>&1 || die "the Docker engine is not reachable; start it (e.g. systemctl start docker) and run again"
	if ! command -v debootstrap >/dev/null; then
		((EUID == 0)) || die "debootstrap is missing; run: sudo apt-get install -y debootstrap"
		say "installing debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
	fi
	((EUID == 0)) || die "debootstrap needs root; run: sudo $0"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# base_current: the base image exists and carries every package of PACKAGES.
base_current() {
	local have
	have=$(docker image inspect -f "{{index .Config.Labels \"$PACKAGES_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null) || return 1
	[[ $have == "${PACKAGES[*]}" ]]
}

build_base() {
	local rootfs mirror
	mirror=$(debian_mirror)
	rootfs=$(mktemp -d /var/tmp/kvfleet-rootfs.XXXXXX)
	# shellcheck disable=SC2064 # expand now: the path is fixed.
	trap "rm -rf '$rootfs'" EXIT
	say "debootstrap $SUITE from $mirror into $rootfs (a few minutes)"
	local IFS=,
	debootstrap --variant=minbase --include="${PACKAGES[*]}" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
		{
			tail -n 30 "$rootfs.log" >&2
			die "debootstrap failed; the log is $rootfs.log"
		}
	unset IFS
	rm -f "$rootfs.log"
	# Package scripts may have left clusters or caches that no role uses.
	rm -rf "$rootfs"/var/lib/postgresql/15/main "$rootfs"/etc/postgresql/15/main \
		"$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	say "importing the root file system as $BASE_IMAGE"
	tar -C "$rootfs" -c . | docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["/bin/bash"]' --change "LABEL $PACKAGES_LABEL=\"${PACKAGES[*]}\"" \
		- "$BASE_IMAGE" >/dev/null
	rm -rf "$rootfs"
	trap - EXIT
}

build_role() {
	local role=$1
	say "building kvfleet-standin/$role:$SUITE"
	local log
	log=$(mktemp)
	if ! docker build --quiet --build-arg "BASE=$BASE_IMAGE" -t "kvfleet-standin/$role:$SUITE" \
		-f "deploy/standin/$role.Dockerfile" deploy/standin >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		die "building the $role image failed (output above)"
	fi
	rm -f "$log"
}

main() {
	local rebuild=false
	[[ ${1:-} == --rebuild ]] && rebuild=true
	require_tools
	if $rebuild || ! image_exists "$BASE_IMAGE"; then
		build_base
		rebuild=true
	elif ! base_current; then
		say "$BASE_IMAGE was made from another package list than this version's: making it again (a few minutes)"
		build_base
		rebuild=true
	else
		say "$BASE_IMAGE exists (use --rebuild to make it again)"
	fi
	local role
	for role in "${ROLES[@]}"; do
		if $rebuild || ! image_exists "kvfleet-standin/$role:$SUITE"; then
			build_role "$role"
		fi
	done
	say "stand-in images ready: ${ROLES[*]/#/kvfleet-standin/}"
}

main "$@"
