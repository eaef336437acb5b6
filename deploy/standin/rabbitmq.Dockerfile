# RabbitMQ from Debian, with the official image's contract: rabbitmq-server,
# rabbitmq-diagnostics and rabbitmq-plugins on PATH, user rabbitmq, data
# and the Erlang cookie in /var/lib/rabbitmq.
ARG BASE
FROM ${BASE}
RUN mkdir -p /var/lib/rabbitmq /var/log/rabbitmq && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
ENV HOME=/var/lib/rabbitmq
WORKDIR /var/lib/rabbitmq
USER rabbitmq
