"""Registering a gated model into the BentoML store with the metadata that describes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shelfops.evaluation.rolling import mean_metrics
from shelfops.features.definitions import DEMAND_SERVICE, RECS_SERVICE
from shelfops.settings import Settings


@dataclass
class TrainedTask:
    """One trained model with what its gate and its registry entry need."""

    task: str  # "demand" or "recs"
    model: Any  # DemandModel or RecsModel
    validation: dict[str, dict[str, dict[str, Any]]]  # {origin: {"model": metrics, ...}}
    extra: dict[str, Any]  # task-specific registry metadata
    seconds: float


def registry_metadata(
    trained: TrainedTask, gate: dict[str, Any], window: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """Metadata stored with a registered model (metrics, baselines, gate, lineage).

    ``metrics`` are this model's own: the mean over the validation origins it was gated on
    (``validation_per_origin`` holds each origin), not those of another fit.

    Args:
        trained: The trained task.
        gate: ``GateResult.to_dict()``.
        window: The data window (:func:`data_window`).
        settings: Settings (the seed).

    Returns:
        The metadata dictionary.
    """
    from shelfops.registry import git_commit

    demand = trained.task == "demand"
    means = mean_metrics(trained.validation)
    return {
        "task": "demand" if demand else "recommendations",
        "metrics": means["model"],
        "baseline_metrics": {k: v for k, v in means.items() if k != "model"},
        "validation_per_origin": trained.validation,
        "gate": gate,
        "data_window": window,
        "feature_service": DEMAND_SERVICE if demand else RECS_SERVICE,
        "git_commit": git_commit(),
        "seed": settings.seed,
        "training_seconds": trained.seconds,
        **trained.extra,
    }


def register_task(task: str, model: Any, metadata: dict[str, Any]) -> str:
    """Save a gated model into the BentoML store (BENTOML_HOME must be set).

    Args:
        task: ``demand`` or ``recs``.
        model: Anything with ``save(path)``.
        metadata: :func:`registry_metadata`.

    Returns:
        The model tag.
    """
    from shelfops.registry import DEMAND_MODEL, RECS_MODEL, save_model

    name = DEMAND_MODEL if task == "demand" else RECS_MODEL
    return save_model(name, model, metadata, labels={"task": task})
