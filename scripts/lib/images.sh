# shellcheck shell=bash
# Sourced by start.sh, .ci/run and scripts/build-standin-images.sh: reads the
# image tags pinned in deploy/images.env (the one place they are written).

KVFLEET_IMAGES_FILE=${KVFLEET_IMAGES_FILE:-$(cd "${BASH_SOURCE[0]%/*}/../.." && pwd)/deploy/images.env}

# pinned_image NAME: the value of NAME in deploy/images.env; fails, naming
# the file, when it is not there.
pinned_image() {
	local value
	value=$(sed -n "s/^$1=//p" "$KVFLEET_IMAGES_FILE" | tail -n1)
	if [[ -z $value ]]; then
		printf '%s: %s is not set in %s\n' "${0##*/}" "$1" "$KVFLEET_IMAGES_FILE" >&2
		return 1
	fi
	printf '%s\n' "$value"
}

# pinned_image_names: the names of the official images' variables.
pinned_image_names() {
	sed -n 's/^\(KVFLEET_[A-Z0-9_]*_IMAGE\)=.*/\1/p' "$KVFLEET_IMAGES_FILE" | grep -v '^KVFLEET_GO_IMAGE$'
}
