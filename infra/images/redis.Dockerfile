# A Redis image from Debian packages, standing in for docker.io/library/redis where no image
# registry is reachable (make images; the container tests run the chart's Redis workload on it).
# The chart's command (`sh -c "exec redis-server ..."`) and user 999 work unchanged. Like the
# official image (built with protected mode off, since the container network is the boundary),
# redis-server here runs with --protected-mode no; the chart's NetworkPolicy and optional
# password do the protecting.
#   DOCKER_BUILDKIT=1 docker build -f infra/images/redis.Dockerfile --build-arg BASE_IMAGE=... infra/images
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --protected-mode no\n' > /usr/local/bin/redis-server \
    && chmod 755 /usr/local/bin/redis-server
EXPOSE 6379
CMD ["redis-server"]
