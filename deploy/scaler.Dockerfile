# The autoscaler as a service of the fleet (docker-compose.yml, profile
# autoscale): the scaler with the Docker CLI and the Compose plugin it
# changes the fleet with. ./start.sh --autoscale builds it as
# kvfleet-scaler:local from a context it prepares:
#   kvfleet-scaler  the static scaler binary (make scaler)
#   cli/            the Docker CLI and Compose plugin the host's start.sh
#                   uses (bin/docker, libexec/docker/cli-plugins/), on the
#                   stand-ins' Debian base; empty on docker:<version>-cli,
#                   which carries both.
ARG BASE
FROM ${BASE}
COPY cli/ /usr/local/
COPY kvfleet-scaler /usr/local/bin/kvfleet-scaler
ENTRYPOINT ["/usr/local/bin/kvfleet-scaler"]
