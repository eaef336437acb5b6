# The PostgreSQL exporter from Debian, with the official image's contract
# (prometheuscommunity/postgres-exporter): postgres_exporter and wget on
# PATH, user nobody.
ARG BASE
FROM ${BASE}
RUN ln -s /usr/bin/prometheus-postgres-exporter /usr/local/bin/postgres_exporter
USER nobody
