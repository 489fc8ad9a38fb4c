"""The one recommendation Predictor that training, evaluation and serving share."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shelfops.features.definitions import RECS_SERVICE
from shelfops.models.recs import RecsModel
from shelfops.predictors.base import RegistryPredictor


class RecsPredictor(RegistryPredictor[RecsModel]):
    """Loads a recommender and returns top-k items with a short human reason each."""

    service = RECS_SERVICE
    default_tag = "shelfops_recs:latest"
    model_type = RecsModel

    @property
    def features(self) -> list[str]:
        """The FeatureService feature names the model was trained on."""
        return list(self.model.features)

    def predict(
        self,
        rows: pd.DataFrame | list[dict[str, Any]],
        k: int = 10,
        now: pd.Timestamp | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Top-``k`` items per customer with reasons; cold-start and opted-out get popularity.

        Args:
            rows: ``recs_v1`` rows with ``customer_id`` (unknown customers may have only the id).
            k: List length.
            now: Scoring time (default: the model's training cutoff).

        Returns:
            ``{customer_id: [{"stock_code", "score", "reason", "description", "category"}]}``.
        """
        df = pd.DataFrame(rows)
        recs = self.model.recommend(df, k=k, now=now)
        return {
            c: [
                {
                    "stock_code": r.stock_code,
                    "score": r.score if r.score > -1e30 else None,
                    "reason": r.reason,
                    "description": r.description,
                    "category": r.category,
                }
                for r in v
            ]
            for c, v in recs.items()
        }

    def predict_online(
        self, customer_ids: list[str], repo: Any, k: int = 10, now: pd.Timestamp | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Read the latest features from the online store and recommend.

        Args:
            customer_ids: Customers.
            repo: A ``FeatureRepo`` (``online(service, entity_rows)``).
            k: List length.
            now: Scoring time (default: now).

        Returns:
            As :meth:`predict`.
        """
        online = repo.online(self.service, [{"customer_id": c} for c in customer_ids])
        return self.predict(
            pd.DataFrame(online), k=k, now=now if now is not None else pd.Timestamp.now()
        )
