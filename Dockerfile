# ShelfOps tools image: Kubeflow pipeline components, the Feast feature server and the
# materialization CronJob (helm/shelfops). Bento images for serving are built by BentoML instead.
#   docker build -t shelfops:dev .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# The CPU build of torch (the default Linux wheel pulls CUDA, several GB).
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN groupadd --gid 10001 shelfops \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/shelfops --shell /usr/sbin/nologin shelfops \
    && python -m venv /opt/venv

WORKDIR /app
# Dependencies first, for layer caching: only pyproject changes bust this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p src/shelfops && touch src/shelfops/__init__.py \
    && pip install --extra-index-url "$PIP_EXTRA_INDEX_URL" . \
    && pip uninstall -y shelfops

COPY src ./src
COPY pipelines ./pipelines
COPY feature_repo ./feature_repo
RUN pip install --no-deps . && chown -R 10001:10001 /app/feature_repo

USER 10001:10001
ENV HOME=/home/shelfops \
    SHELFOPS_FEAST_REPO=/app/feature_repo
ENTRYPOINT ["shelfops"]
CMD ["--help"]
