"""Fixtures for the container suite: the engine, the images `make images` built, a rendered release.

`make test` runs scripts/container-engine.sh and scripts/build-images.sh before pytest, so the
engine runs and the images exist; a missing engine or image fails these tests, never skips them.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shelfops.containers.pods import Cluster, docker
from shelfops.rollout.inferenceservice import first_revisions

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "shelfops"
HELM = ROOT / ".tools" / "bin" / "helm"
RELEASE = NAMESPACE = "shelfops"
TAG = "dev"
IMAGES = {
    "toolsImage": "shelfops",
    "models.recs.image": "shelfops-recs",
    "models.demand.image": "shelfops-demand",
    "redis.bundled.image": "shelfops-redis",
}
"""Chart image values -> the local images of `make images` (all tagged ``dev``)."""
IMAGES_REPORT = ROOT / ".build" / "images.json"
"""What scripts/build-images.sh built, with the generator settings of the retailer it trained on."""


def image_overrides() -> list[str]:
    """``--set`` arguments pointing every image of the chart at the local images."""
    sets = ["image.pullPolicy=Never"]
    for key, repo in IMAGES.items():
        sets += [f"{key}.repository={repo}", f"{key}.tag={TAG}", f"{key}.digest="]
    return [arg for s in sets for arg in ("--set", s)]


def render(*values_files: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``helm template`` of the chart with the local images, values files and ``--set``s.

    The chart renders no InferenceService (the rollout engine owns the spec): the engine's
    objects, built from the rendered inputs ConfigMap the way a first ``shelfops rollout deploy``
    builds them, are appended, so the model servers run exactly what the engine would apply.
    """
    if not HELM.is_file():
        pytest.fail(f"helm not found at {HELM}: run `make validate-k8s` first", pytrace=False)
    argv = [str(HELM), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values_files:
        argv += ["-f", str(path)]
    extra = [arg for s in sets for arg in ("--set", s)]
    done = subprocess.run(
        argv + image_overrides() + extra, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    inputs = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{RELEASE}-inference"
    ]
    return docs + [isvc for configmap in inputs for isvc in first_revisions(configmap)]


@pytest.fixture(scope="session")
def generated() -> dict[str, int]:
    """Generator settings of the retailer the Bento images' models were trained on."""
    if not IMAGES_REPORT.is_file():
        pytest.fail(f"{IMAGES_REPORT} is missing: run `make images`", pytrace=False)
    return dict(json.loads(IMAGES_REPORT.read_text())["generated"])


@pytest.fixture(scope="session")
def engine() -> None:
    """The container engine answers (scripts/container-engine.sh started it)."""
    done = docker("info", "--format", "{{.ServerVersion}}", check=False)
    if done.returncode != 0:
        pytest.fail(
            "no container engine: run `bash scripts/container-engine.sh` (make test does)",
            pytrace=False,
        )
    for image in ["shelfops-base:bookworm", *(f"{repo}:{TAG}" for repo in IMAGES.values())]:
        if docker("image", "inspect", image, check=False).returncode != 0:
            pytest.fail(f"image {image} is missing: run `make images`", pytrace=False)


@pytest.fixture(scope="module")
def cluster(engine: None) -> Iterator[Cluster]:
    """The default release's objects, a network and volumes for this module's workloads."""
    stack = Cluster(
        prefix=f"shelfops-ct-{uuid.uuid4().hex[:6]}", namespace=NAMESPACE, docs=render()
    )
    try:
        yield stack
    finally:
        stack.close()
