#!/usr/bin/env bash
# make images: the container images ShelfOps runs in a cluster, built on this machine.
#
#   1. the engine (scripts/container-engine.sh installs and starts it when absent)
#   2. a base image from Debian packages (mmdebstrap | docker import; no image registry needed),
#      or SHELFOPS_BASE_IMAGE (e.g. python:3.11-slim) pulled from a registry where one is reachable
#   3. the deps and tools images from the project Dockerfile (BASE_IMAGE = that base image,
#      the CPU torch wheel from the host's pip, the host CA bundle only as a BuildKit secret)
#   4. both Bento images: `bentoml containerize` of Bentos of the registered models, on the deps
#      image, so they share its dependency layers. When the model store under SHELFOPS_HOME holds
#      no models yet, a small retailer is generated and trained first.
# Images: shelfops-base:bookworm, shelfops-deps:$TAG, shelfops:$TAG, shelfops-redis:$TAG,
# shelfops-recs:$TAG, shelfops-demand:$TAG (TAG=${SHELFOPS_IMAGE_TAG:-dev}). Timings and sizes go to
# .build/images.json (docs/benchmarks.md quotes them). Reuses the base and Redis images when they exist
# (SHELFOPS_REBUILD_IMAGES=1 rebuilds them); the rest relies on BuildKit's layer cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="/usr/bin:$PATH"   # Debian's docker client (BuildKit through the daemon)
export DOCKER_BUILDKIT=1 BENTOML_DO_NOT_TRACK=True

TAG="${SHELFOPS_IMAGE_TAG:-dev}"
BASE="${SHELFOPS_BASE_IMAGE:-shelfops-base:bookworm}"
DEBIAN_MIRROR="${SHELFOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TORCH_VERSION="2.13.0"
CA_BUNDLE="${SHELFOPS_PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
HOME_DIR="${SHELFOPS_IMAGES_HOME:-$ROOT/.build/images-home}"
BUILD="$ROOT/.build"
REBUILD="${SHELFOPS_REBUILD_IMAGES:-0}"
VENV="$ROOT/.venv"
GEN_LINES=12000 GEN_CUSTOMERS=400 GEN_PRODUCTS=150
mkdir -p "$BUILD/wheels"

die() { echo "build-images: ERROR: $*" >&2; exit 1; }
step() { echo "==> $*"; }
have_image() { [ "$REBUILD" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
declare -A SECONDS_OF=()
timed() {  # timed NAME command...: run and record wall seconds
  local name="$1" t0; shift
  t0=$(date +%s.%N)
  "$@"
  SECONDS_OF[$name]=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
}

[ -x "$VENV/bin/shelfops" ] || die "no ShelfOps venv at $VENV: run 'make install' first"
bash "$ROOT/scripts/container-engine.sh"

# ---------------------------------------------------------------------------------- base image
build_base() {
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm - "$DEBIAN_MIRROR" \
    | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE" >/dev/null
}
if have_image "$BASE"; then step "base image $BASE exists"
elif [ -n "${SHELFOPS_BASE_IMAGE:-}" ]; then
  step "pulling the base image $BASE"
  timed base docker pull --quiet "$BASE"
else
  step "building $BASE from Debian packages (mmdebstrap)"
  command -v mmdebstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
  timed base build_base
fi

# ------------------------------------------------------------------------- deps + tools images
if ! ls "$BUILD"/wheels/torch-"$TORCH_VERSION"*.whl >/dev/null 2>&1; then
  step "saving the CPU torch wheel from the host's pip"
  "$VENV/bin/pip" download --quiet --no-deps "torch==$TORCH_VERSION" -d "$BUILD/wheels" \
    || die "pip could not download torch==$TORCH_VERSION"
fi
# Every dependency as a wheel, built by the host's pip from what it already has (local indexes,
# find-links, its cache) instead of each cold image build fetching ~270 MB through the proxy. The
# deps stage installs from these with --no-index when their requirements.txt matches its own;
# they are bind-mounted while pip runs, never copied into a layer.
requirements() {
  "$VENV/bin/python" -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))"
}
if [ "$(requirements)" != "$(cat "$BUILD/wheels/requirements.txt" 2>/dev/null)" ]; then
  step "building the dependency wheels with the host's pip (reused by the deps image)"
  find "$BUILD/wheels" -maxdepth 1 -type f ! -name "torch-$TORCH_VERSION*.whl" -delete
  wheel_deps() {
    # torch resolves to the CPU wheel saved above (2.13.0+cpu sorts above a plain 2.13.0).
    requirements >"$BUILD/requirements.txt"
    "$VENV/bin/pip" wheel --quiet -r "$BUILD/requirements.txt" -w "$BUILD/wheels" \
      --find-links "$BUILD/wheels" \
      2> >(grep -v "^WARNING: Location" >&2) || die "pip could not build the dependency wheels"
    # The host's pip evaluated environment markers for the host's Python; add what the image's
    # Python needs besides (e.g. async-timeout for python_full_version < "3.11.3").
    local py extra
    py="$(docker run --rm --entrypoint python3 "$BASE" -c 'import platform; print(platform.python_version())')"
    extra="$("$VENV/bin/python" - "$BUILD/wheels" "$py" <<'PY'
import sys, zipfile
from email.parser import Parser
from pathlib import Path
from packaging.markers import default_environment
from packaging.requirements import Requirement
host = default_environment()
image = {**host, "python_full_version": sys.argv[2], "python_version": sys.argv[2].rsplit(".", 1)[0]}
for wheel in Path(sys.argv[1]).glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(name).decode())
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker and "extra" not in str(req.marker):
            if req.marker.evaluate(image) and not req.marker.evaluate(host):
                req.marker = None
                print(req)
PY
)"
    if [ -n "$extra" ]; then
      echo "    for Python $py in the image also: $(tr '\n' ' ' <<<"$extra")"
      echo "$extra" >"$BUILD/requirements-image-python.txt"
      "$VENV/bin/pip" wheel --quiet -r "$BUILD/requirements-image-python.txt" -w "$BUILD/wheels" \
        --find-links "$BUILD/wheels" 2> >(grep -v "^WARNING: Location" >&2) \
        || die "pip could not build the wheels the image's Python needs"
    fi
    [ "$(ls "$BUILD"/wheels/torch-*.whl)" = "$(ls "$BUILD"/wheels/torch-"$TORCH_VERSION"+cpu-*.whl)" ] \
      || die "pip chose a torch build other than the CPU wheel"
    cp "$BUILD/requirements.txt" "$BUILD/wheels/requirements.txt"
  }
  timed wheels wheel_deps
fi
secret=()
[ -s "$CA_BUNDLE" ] && secret=(--secret "id=pip_cert,src=$CA_BUNDLE")
docker_build() {  # docker_build TARGET IMAGE
  docker build --quiet --target "$1" -t "$2" --build-arg "BASE_IMAGE=$BASE" "${secret[@]}" . >/dev/null
}
# Always built: BuildKit's cache makes this instant unless pyproject.toml changed.
step "building shelfops-deps:$TAG (Dockerfile target deps)"
timed deps docker_build deps "shelfops-deps:$TAG"
step "building shelfops:$TAG (Dockerfile target tools; reuses the deps layers)"
timed tools docker_build tools "shelfops:$TAG"

# Redis for the chart's bundled Redis workload (no Docker Hub here: from Debian packages).
if have_image "shelfops-redis:$TAG"; then step "shelfops-redis:$TAG exists"; else
  step "building shelfops-redis:$TAG (Debian redis-server)"
  timed redis docker build --quiet -f infra/images/redis.Dockerfile -t "shelfops-redis:$TAG" \
    --build-arg "BASE_IMAGE=$BASE" infra/images >/dev/null
fi

# --------------------------------------------------------------------------------- Bento images
export SHELFOPS_HOME="$HOME_DIR" BENTOML_HOME="$HOME_DIR/bentoml"
shelfops() { "$VENV/bin/shelfops" "$@"; }
train_small() {
  local raw="$HOME_DIR/raw/generated"
  # Small on purpose (CI time); tests/containers generates the same retailer from images.json.
  shelfops data generate --lines "$GEN_LINES" --customers "$GEN_CUSTOMERS" \
    --products "$GEN_PRODUCTS" --years 2 --out "$raw" >/dev/null
  shelfops data ingest "$raw/transactions.csv" --customers "$raw/customers.csv" \
    --products "$raw/products.csv" --max-staleness-days -1 >/dev/null
  shelfops features apply >/dev/null
  shelfops features materialize >/dev/null
  shelfops train --demand-margin -1 --recs-margin -1 --accept-served-gap >/dev/null
}
# Models saved by older code may not load in the new images: retrain when the model code changed.
stale=""
if [ -d "$BENTOML_HOME/models" ]; then
  stale="$(find src/shelfops/models src/shelfops/predictors src/shelfops/training -name '*.py' \
    -newer "$BENTOML_HOME/models" 2>/dev/null | head -n1)"
fi
if [ -n "$stale" ]; then
  step "model code changed since the models were saved ($stale): retraining"
  rm -rf "$HOME_DIR"
  timed train train_small
elif [ -d "$BENTOML_HOME/models/shelfops_recs" ] && [ -d "$BENTOML_HOME/models/shelfops_demand" ]; then
  step "registered models found in $BENTOML_HOME"
else
  step "no registered models in $BENTOML_HOME: generating a small retailer and training"
  timed train train_small
fi
declare -A BENTO_OF=()
containerize() {
  local model tag
  for model in recs demand; do
    tag="$("$VENV/bin/python" -c "
from shelfops.serving.package import build_bentos
from shelfops.settings import Settings
print(build_bentos(Settings(), {'$model': None})['$model'])")"
    # BentoML only reads a dockerfile_template below its working directory, and it stages the
    # build context in TMPDIR: run it from there.
    (cd "${TMPDIR:-/tmp}" && "$VENV/bin/bentoml" containerize "$tag" --backend docker \
      --image-tag "shelfops-$model:$TAG" \
      --opt "build-arg=BASE_IMAGE=shelfops-deps:$TAG" \
      ${secret[@]:+--opt "secret=id=pip_cert,src=$CA_BUNDLE"}) >"$BUILD/containerize-$model.log" 2>&1 \
      || { tail -n 30 "$BUILD/containerize-$model.log" >&2; die "bentoml containerize $tag failed"; }
    # Also tag the image with the Bento version: the pipeline's canary step deploys that tag.
    docker tag "shelfops-$model:$TAG" "shelfops-$model:${tag#*:}"
    BENTO_OF[$model]="${tag#*:}"
    echo "    shelfops-$model:$TAG = shelfops-$model:${tag#*:} <- Bento $tag"
  done
}
step "bentoml build + containerize of both models (base: shelfops-deps:$TAG)"
timed bentos containerize

# ------------------------------------------------------------------------------------- report
summary="$(
  for image in "$BASE" "shelfops-deps:$TAG" "shelfops:$TAG" "shelfops-redis:$TAG" \
    "shelfops-recs:$TAG" "shelfops-demand:$TAG"; do
    echo "$image $(docker image inspect --format '{{.Size}}' "$image")"
  done
)"
times="$(for k in "${!SECONDS_OF[@]}"; do echo "$k ${SECONDS_OF[$k]}"; done)"
bentos="$(for k in "${!BENTO_OF[@]}"; do echo "$k ${BENTO_OF[$k]}"; done)"
GENERATED="lines $GEN_LINES customers $GEN_CUSTOMERS products $GEN_PRODUCTS years 2" \
SUMMARY="$summary" TIMES="$times" BENTOS="$bentos" python3 - "$BUILD/images.json" <<'PY'
import json, os, sys, datetime
sizes = {l.split()[0]: round(int(l.split()[1]) / 1e6) for l in os.environ["SUMMARY"].splitlines()}
secs = {l.split()[0]: float(l.split()[1]) for l in os.environ["TIMES"].splitlines() if l.strip()}
bentos = dict(l.split() for l in os.environ["BENTOS"].splitlines() if l.strip())
report = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
          "image_size_mb": sizes, "build_seconds": secs, "bento_versions": bentos,
          "generated": {k: int(v) for k, v in zip(*[iter(os.environ["GENERATED"].split())] * 2)}}
json.dump(report, open(sys.argv[1], "w"), indent=2)
for name, mb in sizes.items():
    print(f"    {name:32} {mb:6d} MB")
for name, s in secs.items():
    print(f"    built {name:26} in {s:6.1f} s")
PY
