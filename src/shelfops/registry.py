"""Model registry on the BentoML model store (the success gate lives in ``shelfops.training.gate``).

Models are saved with ``bentoml.models.create`` (a folder the model writes into) with metadata:
metrics, baseline metrics, data window, FeatureService name, git commit, seed and training time.
BentoML's home comes from ``Settings().bentoml_home``: :func:`use_bentoml_home` must run before
``bentoml`` is imported anywhere in the process (entry points call it first).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Protocol

from shelfops.settings import Settings

DEMAND_MODEL = "shelfops_demand"
RECS_MODEL = "shelfops_recs"


class SavableModel(Protocol):
    """Anything with ``save(path)``."""

    def save(self, path: Path) -> None:
        """Write the model into ``path``."""


def use_bentoml_home(settings: Settings) -> Path:
    """Point BentoML at the project-local home from the settings.

    Args:
        settings: The settings object.

    Returns:
        The BentoML home.
    """
    home = settings.bentoml_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(home)
    return home


def git_commit(cwd: Path | None = None) -> str:
    """The current git commit, or ``"unknown"`` outside a repository."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _primitive(obj: Any) -> Any:
    """BentoML metadata accepts primitives, lists and dicts of them: drop None and NaN."""
    if isinstance(obj, dict):
        return {
            str(k): _primitive(v)
            for k, v in obj.items()
            if v is not None and not (isinstance(v, float) and v != v)
        }
    if isinstance(obj, list | tuple):
        return [_primitive(v) for v in obj if v is not None]
    if isinstance(obj, bool | int | float | str):
        return obj
    return json.loads(json.dumps(obj, default=str))


def save_model(
    name: str, model: SavableModel, metadata: dict[str, Any], labels: dict[str, str] | None = None
) -> str:
    """Save a model folder into the BentoML model store.

    Args:
        name: Model name (``shelfops_demand`` or ``shelfops_recs``).
        model: The model; its ``save`` writes into the store's folder.
        metadata: Metrics, baselines, data window, FeatureService, commit, seed, timings.
        labels: Short string labels.

    Returns:
        The tag (``name:version``).
    """
    import bentoml

    meta = _primitive(metadata)
    with bentoml.models.create(name, labels=labels or {}, metadata=meta) as bento_model:
        folder = Path(bento_model.path)
        model.save(folder / "model")
        (folder / "model" / "metadata.json").write_text(json.dumps(meta, indent=2))
    return str(bento_model.tag)


def model_path(tag: str) -> Path:
    """Folder of a stored model (``name`` resolves to the latest version).

    Args:
        tag: ``name`` or ``name:version``.

    Returns:
        The folder the model was saved into.
    """
    import bentoml

    return Path(bentoml.models.get(tag).path) / "model"


def model_metadata(tag: str) -> dict[str, Any]:
    """Metadata stored with a model."""
    import bentoml

    return dict(bentoml.models.get(tag).info.metadata)


def latest_tag(name: str) -> str | None:
    """Tag of the newest stored version of ``name``, or None."""
    import bentoml

    try:
        return str(bentoml.models.get(f"{name}:latest").tag)
    except bentoml.exceptions.NotFound:
        return None
