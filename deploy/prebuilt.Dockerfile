# The API and consumer image from binaries built on the host
# (`make build`), for machines without a container registry. Same final
# image as deploy/Dockerfile.
FROM scratch
COPY bin/kvfleet-api bin/kvfleet-consumer /
USER 65532:65532
EXPOSE 8000 9100
