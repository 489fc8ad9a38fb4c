"""Fixtures for the container suite: the engine, the images `make images` built, a rendered release.

`make test` runs scripts/container-engine.sh and scripts/build-images.sh before pytest, so the
engine runs and the images exist; a missing engine or image fails these tests, never skips them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shelfops.containers import release
from shelfops.containers.pods import Cluster, docker
from shelfops.containers.release import IMAGES, NAMESPACE, TAG

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "shelfops"
HELM = ROOT / ".tools" / "bin" / "helm"
IMAGES_REPORT = ROOT / ".build" / "images.json"
"""What scripts/build-images.sh built, with the generator settings of the retailer it trained on."""


def render(*values_files: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``helm template`` of the chart with the local images, values files and ``--set``s."""
    try:
        return release.render(HELM, CHART, *values_files, sets=sets)
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


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
