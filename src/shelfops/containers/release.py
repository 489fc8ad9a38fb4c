"""The Helm release the container stacks run: ``helm template`` of the chart with the local images.

One place turns the chart into objects for :mod:`shelfops.containers.pods`: the container suite
(tests/containers) and ``shelfops cluster`` both render through :func:`render`, so both run
exactly what the chart declares, with every image pointed at what ``make images`` built.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

RELEASE = NAMESPACE = "shelfops"
"""Release name and namespace (the compiled pipeline's default claim and ConfigMap names)."""
TAG = "dev"
"""Tag of the local images (``SHELFOPS_IMAGE_TAG`` of scripts/build-images.sh)."""
IMAGES = {
    "toolsImage": "shelfops",
    "models.recs.image": "shelfops-recs",
    "models.demand.image": "shelfops-demand",
    "redis.bundled.image": "shelfops-redis",
}
"""Chart image values -> the local images of `make images` (all tagged :data:`TAG`)."""


def image_overrides(tag: str = TAG) -> list[str]:
    """``--set`` arguments pointing every image of the chart at the local images."""
    sets = ["image.pullPolicy=Never"]
    for key, repo in IMAGES.items():
        sets += [f"{key}.repository={repo}", f"{key}.tag={tag}", f"{key}.digest="]
    return [arg for s in sets for arg in ("--set", s)]


def render(
    helm: Path, chart: Path, *values_files: Path, sets: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """``helm template`` of the chart with the local images, values files and ``--set``s.

    The chart renders no InferenceService (the rollout engine owns the spec): the engine's
    objects, built from the rendered inputs ConfigMap the way a first ``shelfops rollout deploy``
    builds them, are appended, so the model servers run exactly what the engine would apply.

    Args:
        helm: The helm binary (``make validate-k8s`` puts it in ``.tools/bin``).
        chart: The chart folder.
        *values_files: Extra values files, in order.
        sets: Extra ``key=value`` overrides.

    Returns:
        The rendered objects.

    Raises:
        FileNotFoundError: helm is missing.
        RuntimeError: helm failed (its message).
    """
    if not helm.is_file():
        raise FileNotFoundError(f"helm not found at {helm}: run `make validate-k8s` first")
    argv = [str(helm), "template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for path in values_files:
        argv += ["-f", str(path)]
    extra = [arg for s in sets for arg in ("--set", s)]
    done = subprocess.run(
        argv + image_overrides() + extra, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed: {done.stderr.strip()}")
    from shelfops.rollout.inferenceservice import first_revisions

    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    inputs = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{RELEASE}-inference"
    ]
    return docs + [isvc for configmap in inputs for isvc in first_revisions(configmap)]
