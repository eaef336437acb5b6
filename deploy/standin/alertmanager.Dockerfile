# Alertmanager from Debian, with the official image's contract
# (prom/alertmanager): alertmanager, amtool and wget on PATH, user nobody,
# data in /alertmanager.
ARG BASE
FROM ${BASE}
RUN ln -s /usr/bin/prometheus-alertmanager /usr/local/bin/alertmanager && \
    mkdir -p /alertmanager && chown nobody:nogroup /alertmanager
WORKDIR /alertmanager
USER nobody
