#!/usr/bin/env bash
# Makes the certificates of the CockroachDB cluster once: a CA, one node
# certificate valid for every node's hostname and for db-proxy, and the
# root client certificate that the init job and healthchecks use. The
# kvfleet user authenticates with a password over TLS.
set -euo pipefail
dir=/certs
if [[ -s $dir/ca.crt && -s $dir/node.crt && -s $dir/client.root.crt ]]; then
	echo "certificates exist"
	exit 0
fi
cockroach cert create-ca --certs-dir="$dir" --ca-key="$dir/ca.key" --allow-ca-key-reuse
cockroach cert create-node cockroach-1 cockroach-2 cockroach-3 db-proxy localhost 127.0.0.1 \
	--certs-dir="$dir" --ca-key="$dir/ca.key" --overwrite
cockroach cert create-client root --certs-dir="$dir" --ca-key="$dir/ca.key" --overwrite
# The CA key is needed only here; keep it out of the nodes' reach.
rm -f "$dir/ca.key"
echo "certificates created"
