#!/usr/bin/env bash
# Proves that a running kvfleet answers the original system's three calls:
# a PUT is accepted, the GET that follows returns the value, a DELETE is
# accepted and the GET after it is a 404. Usage: scripts/smoke-test.sh [BASE_URL]
set -euo pipefail

readonly BASE_URL=${1:-http://127.0.0.1:8000}
# Writes are applied asynchronously; this bounds the wait for each to show.
readonly CONVERGE_SECONDS=${SMOKE_CONVERGE_SECONDS:-5}

fail() {
	printf 'smoke test FAILED: %s\n' "$*" >&2
	exit 1
}

pass() {
	printf '  ok  %s\n' "$*"
}

# request METHOD PATH [BODY]: prints the status code, then the body.
request() {
	local method=$1 path=$2 body=${3-}
	local args=(--silent --show-error --max-time 10 -X "$method" -w '\n%{http_code}')
	if [[ -n "$body" ]]; then
		args+=(-H 'Content-Type: application/json' --data-binary "$body")
	fi
	curl "${args[@]}" "$BASE_URL$path"
}

status_of() { tail -n1 <<<"$1"; }
body_of() { sed '$d' <<<"$1"; }

# eventually STATUS PATH: polls GET PATH until it answers STATUS.
eventually() {
	local want=$1 path=$2 out
	local deadline=$((SECONDS + CONVERGE_SECONDS))
	while :; do
		out=$(request GET "$path") || fail "GET $path: no answer from $BASE_URL"
		if [[ $(status_of "$out") == "$want" ]]; then
			printf '%s' "$(body_of "$out")"
			return
		fi
		((SECONDS < deadline)) || fail "GET $path answered $(status_of "$out"), not $want, within ${CONVERGE_SECONDS}s: $(body_of "$out")"
		sleep 0.1
	done
}

main() {
	local key="smoke-$$-$RANDOM" out body
	printf 'smoke tests against %s\n' "$BASE_URL"

	out=$(request PUT / "{\"key_name\":\"$key\",\"key_value\":\"valor\"}") || fail "PUT: no answer from $BASE_URL"
	[[ $(status_of "$out") == 202 ]] || fail "PUT answered $(status_of "$out"): $(body_of "$out")"
	pass "PUT / -> 202 $(body_of "$out")"

	body=$(eventually 200 "/?key=$key")
	[[ $body == *'"value":"valor"'* ]] || fail "GET returned the wrong value: $body"
	pass "GET /?key=$key -> 200 $body"

	out=$(request DELETE "/?key_name=$key") || fail "DELETE: no answer"
	[[ $(status_of "$out") == 202 ]] || fail "DELETE answered $(status_of "$out"): $(body_of "$out")"
	pass "DELETE /?key_name=$key -> 202"

	body=$(eventually 404 "/?key=$key")
	pass "GET after DELETE -> 404 $body"

	out=$(request GET "/?key=never-written-$$-$RANDOM") || fail "GET: no answer"
	[[ $(status_of "$out") == 404 ]] || fail "GET of a never-written key answered $(status_of "$out")"
	pass "GET of a never-written key -> 404"

	out=$(request PUT / '{"key_name":') || fail "PUT: no answer"
	[[ $(status_of "$out") == 400 ]] || fail "malformed PUT answered $(status_of "$out")"
	pass "malformed PUT -> 400 $(body_of "$out")"
	printf 'smoke tests passed\n'
}

main
