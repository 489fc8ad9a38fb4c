"""The pipeline's canary step hands each new model to the rollout engine with the right version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shelfops.orchestration import steps

pytestmark = pytest.mark.unit


@dataclass
class _Result:
    outcome: str
    ok: bool
    reason: str = ""


class _Engine:
    """Records deploy calls; rolls back the versions it is told to."""

    def __init__(self, failing: set[str]) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failing = failing

    def deploy(self, model: str, version: str) -> _Result:
        self.calls.append((model, version))
        if version in self.failing:
            return _Result("rolled_back", False, "p95 over the limit")
        return _Result("promoted", True)


def _patch(monkeypatch: pytest.MonkeyPatch, engine: _Engine, seen: dict[str, Any]) -> None:
    import shelfops.rollout.factory as factory

    def build_engine(settings: Any, target: str, *args: Any, **kwargs: Any) -> _Engine:
        seen["target"] = target
        return engine

    monkeypatch.setattr(factory, "build_engine", build_engine)


def test_local_canary_rolls_out_registered_model_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locally the engine gets each model-store version; untrained models are skipped."""
    engine, seen = _Engine(set()), {}
    _patch(monkeypatch, engine, seen)
    out = steps.deploy_canary_step(
        str(tmp_path),
        {"demand": "shelfops_demand:d1", "recs": ""},
        {"demand": "shelfops-demand:b1", "recs": ""},
    )
    assert seen["target"] == "local"
    assert engine.calls == [("demand", "d1")]
    assert out["outcomes"] == {"demand": "promoted"}


def test_cluster_canary_uses_bento_image_tags_and_fails_on_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the cluster the image tag (Bento version) is deployed; a rollback fails the step."""
    monkeypatch.setenv("SHELFOPS_PROFILE", "cluster")
    engine, seen = _Engine({"b2"}), {}
    _patch(monkeypatch, engine, seen)
    with pytest.raises(steps.StepError, match="recs canary b2 was rolled back: p95"):
        steps.deploy_canary_step(
            str(tmp_path),
            {"demand": "shelfops_demand:d1", "recs": "shelfops_recs:r2"},
            {"demand": "shelfops-demand:b1", "recs": "shelfops-recs:b2"},
        )
    assert seen["target"] == "kserve"
    assert engine.calls == [("demand", "b1"), ("recs", "b2")]
