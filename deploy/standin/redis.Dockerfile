# Redis and Sentinel from Debian, with the official image's contract:
# redis-server, redis-sentinel and redis-cli on PATH, user redis, data in /data.
ARG BASE
FROM ${BASE}
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
