# Prometheus from Debian: prometheus and wget on PATH, user nobody, data in
# /prometheus, as in the official image.
ARG BASE
FROM ${BASE}
RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus
WORKDIR /prometheus
USER nobody
