# HAProxy from Debian: haproxy and bash on PATH, user haproxy, as in the
# official image.
ARG BASE
FROM ${BASE}
USER haproxy
STOPSIGNAL SIGUSR1
