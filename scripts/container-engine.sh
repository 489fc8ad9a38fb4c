#!/usr/bin/env bash
# Install and start the container engine when absent (make images, make test, make cluster-up).
#
# Debian's docker.io (dockerd + containerd + runc) and mmdebstrap come from apt, the way
# `make test-deps` installs redis-server. There is no service manager on these machines, so dockerd
# is started in the background with setsid and we poll `docker info` until it answers.
# Debian's /usr/bin/docker client is used (it has BuildKit through the daemon; a docker 28.x client
# without buildx elsewhere in PATH cannot run `RUN --mount=type=secret`).
#   bash scripts/container-engine.sh            # idempotent; prints the engine version
set -euo pipefail

LOG="${SHELFOPS_DOCKERD_LOG:-/var/log/shelfops-dockerd.log}"
DOCKER=/usr/bin/docker
die() { echo "container-engine: ERROR: $*" >&2; exit 1; }

# An engine that already answers (a CI runner's own Docker) is used as it is.
if [ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; then
  echo ">> container engine $("$DOCKER" version --format '{{.Server.Version}}') is running"
  exit 0
fi
need_apt=()
[ -x /usr/sbin/dockerd ] && [ -x "$DOCKER" ] || need_apt+=(docker.io)
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
if [ "${#need_apt[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "installing ${need_apt[*]} needs root (apt-get)"
  echo ">> installing ${need_apt[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || die "apt-get could not install ${need_apt[*]}"
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  echo ">> starting dockerd (log: $LOG)"
  setsid nohup /usr/sbin/dockerd >"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$DOCKER" info >/dev/null 2>&1 || { tail -n 20 "$LOG" >&2; die "dockerd did not answer within 60 s"; }
fi
echo ">> container engine $("$DOCKER" version --format '{{.Server.Version}}') is running"
