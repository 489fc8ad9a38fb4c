"""The one recommendation Predictor that training, evaluation and serving share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from shelfops.features.definitions import RECS_SERVICE
from shelfops.models.recs import Ranked, Recommendation, RecsModel, Rows, regulars
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

    def recommend(
        self,
        rows: Rows,
        k: int = 10,
        now: pd.Timestamp | None = None,
        discover: bool = False,
    ) -> dict[str, list[Recommendation]]:
        """Top-``k`` items per customer as the model's objects (reasons worded when read).

        Args:
            rows: ``recs_v1`` rows with ``customer_id`` (unknown customers may have only the id):
                an offline frame, or online rows as dicts or columns (scored without pandas).
            k: List length.
            now: Scoring time (default: the model's training cutoff).
            discover: The discover list: no regulars (:meth:`RecsModel.rank`).

        Returns:
            ``{customer_id: [Recommendation, ...]}``; a popularity top-up scores ``-inf``.
        """
        return self.model.recommend(rows, k=k, now=now, discover=discover)

    def rank(
        self, rows: Rows, k: int, now: pd.Timestamp | None = None, discover: bool = False
    ) -> Ranked:
        """The best ``k`` scored candidates of each personal row, as arrays (the server's path).

        Args:
            rows: ``recs_v1`` rows of customers who may be personalised and have a history.
            k: Candidates per customer.
            now: Scoring time (default: the model's training cutoff).
            discover: The discover list: no regulars (:meth:`RecsModel.rank`).

        Returns:
            Item rows, scores and what their reasons are worded from, best first.
        """
        return self.model.rank(rows, k, self.model.now_seconds(now), discover)

    def regulars(self, ranked: Ranked, row: int) -> list[int]:
        """Item rows of row ``row``'s regulars, which a discover list leaves out."""
        return regulars(ranked, row).tolist()

    def reasons(self, ranked: Ranked, rows: Sequence[int], ranks: Sequence[int]) -> list[str]:
        """The reasons for the ``ranks[n]``-th item of row ``rows[n]`` of :meth:`rank`'s answer."""
        return self.model.ranked_reasons(ranked, rows, ranks)

    def predict(
        self,
        rows: Rows,
        k: int = 10,
        now: pd.Timestamp | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """:meth:`recommend` as plain dicts, every reason worded (reports, console, monitoring).

        Cold-start and opted-out customers get popularity.

        Returns:
            ``{customer_id: [{"stock_code", "score", "reason", "description", "category"}]}``;
            a top-up's score is None.
        """
        return {
            c: [
                {
                    "stock_code": r.stock_code,
                    "score": r.score if r.scored else None,
                    "reason": r.reason,
                    "description": r.description,
                    "category": r.category,
                }
                for r in v
            ]
            for c, v in self.recommend(rows, k=k, now=now).items()
        }
