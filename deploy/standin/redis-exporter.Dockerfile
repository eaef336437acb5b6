# The Redis exporter from Debian, with the official image's contract
# (oliver006/redis_exporter, Alpine variant): /redis_exporter, sh and wget,
# a user without privileges.
ARG BASE
FROM ${BASE}
RUN ln -s /usr/bin/prometheus-redis-exporter /redis_exporter
USER nobody
