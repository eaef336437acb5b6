#!/usr/bin/env bash
# Starts the fleet's nginx in Kubernetes (nginx.conf here is the fleet's,
# with the differences listed at its top). nginx's own resolver reads no
# /etc/resolv.conf and knows no search domains, so this writes the pod's
# DNS server and the full name of the headless Service "api" (its
# namespace's search domain, the first one in /etc/resolv.conf) into the
# include that the upstream "api" reads, then runs nginx in the foreground.
# With "resolve", nginx re-resolves the name every 5 s (valid=5s) and
# balances over whatever ready API pods it returns.
set -euo pipefail
conf=/tmp/kvfleet/api-upstream.conf

# first FIELD: the second word of the first /etc/resolv.conf line that
# starts with FIELD.
first() { awk -v f="$1" '$1 == f { print $2; exit }' /etc/resolv.conf; }

dns=$(first nameserver)
domain=$(first search)
if [[ -z $dns || -z $domain ]]; then
	echo "nginx k8s-start: /etc/resolv.conf has no nameserver or search line; is dnsPolicy ClusterFirst?" >&2
	exit 1
fi
if [[ $dns == *:* ]]; then
	dns="[$dns]"
fi
mkdir -p "${conf%/*}"
cat >"$conf" <<CONF
resolver $dns valid=5s;
resolver_timeout 2s;
server ${API_SERVICE:-api}.$domain:8000 resolve max_fails=3 fail_timeout=10s;
CONF
exec nginx -c /etc/kvfleet/nginx/nginx.conf -g 'daemon off;'
