# ShelfOps images. Two targets share every dependency layer:
#   deps   Python 3.11 venv at /opt/venv with ShelfOps' pinned dependencies (CPU torch); also the
#          base image of the Bento images (serving/Dockerfile.j2 reuses its venv).
#   tools  (default) deps + the shelfops package, pipelines/, feature_repo/, serving/ and
#          loadtests/: Kubeflow pipeline components, the Feast feature server, the materialization
#          CronJob, packaging and the canary gate.
# `make images` builds both from a local base image; a plain build uses the public one:
#   DOCKER_BUILDKIT=1 docker build -t shelfops:dev .
# Build inputs (all optional):
#   --build-arg BASE_IMAGE=...      any image with python3 (3.11) and the venv module
#   --secret id=pip_cert,src=FILE   CA bundle for pip behind an intercepting proxy; it is mounted
#                                   only while pip runs and never stored in a layer
#   .build/wheels/torch-*.whl       the CPU torch wheel (scripts/build-images.sh puts it there); when
#                                   absent pip takes torch from the PyTorch CPU index
#   .build/wheels/*.whl + requirements.txt
#                                   every dependency as a wheel, built by the host's pip; when their
#                                   requirements.txt matches pyproject.toml's list, pip installs from
#                                   them with --no-index (no download through a proxy)
ARG BASE_IMAGE=python:3.11-slim

# Local wheels (if any) are bind-mounted into the install step from this stage, never copied into
# a layer of the result. The Dockerfile makes the glob match even when .build/wheels is absent (and,
# unlike pyproject.toml, rarely changes: the bind mount is part of the deps layer's cache key).
FROM scratch AS wheels
COPY Dockerfile .build/wheel[s]/ /wheels/

# Only the dependency list decides the deps layer: BuildKit compares the extracted file's content,
# so edits elsewhere in pyproject.toml (markers, tool settings) do not reinstall anything.
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /requirements.txt

FROM ${BASE_IMAGE} AS deps
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip_cert \
    --mount=type=bind,from=wheels,source=/wheels,target=/tmp/wheels \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if cmp -s /tmp/wheels/requirements.txt /tmp/requirements.txt; then \
      pip install --no-compile --no-index --find-links /tmp/wheels -r /tmp/requirements.txt; \
    else \
      torch_wheel="$(ls /tmp/wheels/torch-*.whl 2>/dev/null | head -n1 || true)"; \
      if [ -n "$torch_wheel" ]; then pip install --no-compile --no-deps "$torch_wheel"; \
      else pip install --index-url "$TORCH_INDEX_URL" "$(grep '^torch==' /tmp/requirements.txt)"; fi; \
      pip install --no-compile -r /tmp/requirements.txt; \
    fi; \
    rm /tmp/requirements.txt; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM deps AS tools
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY pipelines ./pipelines
COPY feature_repo ./feature_repo
COPY serving ./serving
COPY loadtests ./loadtests
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    pip wheel --no-deps -q -w dist . && pip install --no-deps dist/shelfops-*.whl \
    && rm -rf build src/*.egg-info \
    && groupadd --gid 10001 shelfops \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin shelfops
# Pods run with a read-only root filesystem: everything ShelfOps writes goes under SHELFOPS_HOME,
# a mounted volume in the chart and the pipeline (a writable default here for plain `docker run`).
ENV HOME=/tmp \
    SHELFOPS_HOME=/var/lib/shelfops \
    SHELFOPS_PROJECT_ROOT=/app \
    BENTOML_DO_NOT_TRACK=True
RUN mkdir -p /var/lib/shelfops && chown 10001:10001 /var/lib/shelfops
USER 10001:10001
ENTRYPOINT ["shelfops"]
CMD ["--help"]
