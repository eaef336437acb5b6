# Nginx from Debian: nginx and curl on PATH; the master starts as root and
# the configuration sets every path it writes.
ARG BASE
FROM ${BASE}
STOPSIGNAL SIGQUIT
