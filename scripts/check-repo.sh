#!/usr/bin/env bash
# Checks that the repository tracks source only: no tracked file may be
# larger than 1 MiB (binaries and build output belong in .gitignore, data in
# a release or a download). Run by .ci/run before the tests and by
# `make check-repo`. KVFLEET_MAX_FILE_BYTES changes the limit.
#
# Usage: scripts/check-repo.sh   (exit 0 when every tracked file is small enough)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly LIMIT=${KVFLEET_MAX_FILE_BYTES:-1048576}

# tracked_sizes prints "SIZE PATH" for every file in git's index, SIZE being
# the size of the blob that a commit would record (not of the working copy).
tracked_sizes() {
	local entries=() entry meta mode oid paths=() oids=() sizes=() i
	mapfile -d '' entries < <(git ls-files -z --stage)
	for entry in "${entries[@]}"; do
		# "<mode> <object> <stage>\t<path>"
		meta=${entry%%$'\t'*}
		read -r mode oid _ <<<"$meta"
		# A submodule is a commit, not a file of this repository.
		[[ $mode == 160000 ]] && continue
		oids+=("$oid")
		paths+=("${entry#*$'\t'}")
	done
	((${#oids[@]} > 0)) || return 0
	mapfile -t sizes < <(printf '%s\n' "${oids[@]}" | git cat-file --batch-check='%(objectsize)')
	for i in "${!paths[@]}"; do
		printf '%s %s\n' "${sizes[i]}" "${paths[i]}"
	done
}

main() {
	command -v git >/dev/null || {
		echo "check-repo: git is missing; run: apt-get install -y git" >&2
		exit 1
	}
	git rev-parse --git-dir >/dev/null 2>&1 || {
		echo "check-repo: not a git repository; run it inside a clone" >&2
		exit 1
	}
	local big=() size path count=0
	while read -r size path; do
		count=$((count + 1))
		if ((size > LIMIT)); then
			big+=("$(printf '%10d bytes  %s' "$size" "$path")")
		fi
	done < <(tracked_sizes)
	if ((${#big[@]} > 0)); then
		printf 'check-repo: FAILED: %d tracked file(s) over %d bytes:\n' "${#big[@]}" "$LIMIT" >&2
		printf '  %s\n' "${big[@]}" >&2
		printf 'Untrack them (git rm --cached FILE) and ignore build output in .gitignore.\n' >&2
		exit 1
	fi
	printf 'check-repo: ok, %d tracked files, none over %d bytes\n' "$count" "$LIMIT"
}

main "$@"
