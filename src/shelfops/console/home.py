"""What the console reads from the home, through the modules that own each artefact, cached.

Every loader is keyed by the modification times of the files or folders it depends on, so a
page after new data arrives recomputes once and every later page reuses the result. Pages on
the 1M-line home stay fast because the expensive steps (reading a million lines, the weekly
panel, the category pairs) run once per change of the data, not once per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd

from shelfops.settings import Settings

T = TypeVar("T")


def _stamp(paths: list[Path]) -> tuple[float, ...]:
    """Modification times of the paths and of the files directly inside folders (0 if absent)."""
    out: list[float] = []
    for p in paths:
        try:
            out.append(p.stat().st_mtime)
        except OSError:
            out.append(0.0)
            continue
        if p.is_dir():
            for child in p.iterdir():
                try:
                    out.append(child.stat().st_mtime)
                except OSError:
                    continue
    return tuple(out)


class HomeData:
    """Cached, read-only views of one home's artefacts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, tuple[tuple[float, ...], Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def cached(self, key: str, deps: list[Path], compute: Callable[[], T]) -> T:
        """``compute()`` once per change of ``deps`` (one computation at a time per key)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            stamp = _stamp(deps)
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            value = compute()
            self._cache[key] = (stamp, value)
            return value

    # -- clean data --------------------------------------------------------------------------
    @property
    def clean_deps(self) -> list[Path]:
        """The clean tables' folder (ingest and forgetting rewrite files there)."""
        return [self.settings.clean_dir]

    def clean(self) -> dict[str, pd.DataFrame]:
        """The clean transactions, customers and products."""
        from shelfops.data.ingest import load_clean

        return self.cached("clean", self.clean_deps, lambda: load_clean(self.settings.root))

    def weekly(self) -> pd.DataFrame:
        """Weekly units per product (the same panel the demand features use)."""
        from shelfops.features.build import weekly_sales

        return self.cached(
            "weekly", self.clean_deps, lambda: weekly_sales(self.clean()["transactions"])
        )

    # -- models ------------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        """The BentoML model store of the home."""
        return self.settings.bentoml_home / "models"

    def recs_predictor(self) -> Any:
        """The newest registered recommender (:class:`~shelfops.predictors.recs.RecsPredictor`)."""
        from shelfops.predictors.recs import RecsPredictor
        from shelfops.registry import RECS_MODEL, latest_tag

        def load() -> Any:
            tag = latest_tag(RECS_MODEL)
            if tag is None:
                return None
            return RecsPredictor.from_registry(tag)

        return self.cached("recs_model", [self.models_dir / RECS_MODEL], load)

    def model_metadata(self, name: str) -> dict[str, Any] | None:
        """Registry metadata of the newest version of ``name`` (None when none is registered)."""
        from shelfops.registry import latest_tag, model_metadata

        def load() -> dict[str, Any] | None:
            tag = latest_tag(name)
            return None if tag is None else {"tag": tag, **model_metadata(tag)}

        return self.cached(f"meta:{name}", [self.models_dir / name], load)

    # -- monitoring --------------------------------------------------------------------------
    def log_deps(self, model: str) -> list[Path]:
        """What a model's prediction log and the feedback depend on (their folders)."""
        from shelfops.monitoring.store import feedback_dir, predictions_dir

        return [predictions_dir(self.settings) / model, feedback_dir(self.settings)]

    def predictions(self, model: str) -> pd.DataFrame:
        """The prediction log of one model."""
        from shelfops.monitoring.store import predictions_dir, read_predictions

        return self.cached(
            f"log:{model}",
            [predictions_dir(self.settings) / model],
            lambda: read_predictions(self.settings, model),
        )

    def feedback(self, kind: Literal["recommendation", "actual"]) -> pd.DataFrame:
        """Feedback of one kind (``recommendation`` or ``actual``)."""
        from shelfops.monitoring.store import FeedbackStore, feedback_dir

        store = FeedbackStore(self.settings)
        return self.cached(
            f"feedback:{kind}",
            [feedback_dir(self.settings)],
            lambda: store.read(kind),
        )
