"""The recommendation server: consent first, online features, the shared Predictor, then rules.

Per request:

1. Read the customer's consent flags (and nothing else) from the online store.
2. Opted out of personalization: the non-personal popularity list; their behaviour features are
   never read. Otherwise read the behaviour features (``recs_v1``); an unknown customer has none
   and gets the cold-start list from the same Predictor.
3. Score a candidate pool with :class:`~shelfops.predictors.recs.RecsPredictor` (the one
   training and evaluation use), apply the merchandising rules to the catalogue snapshot, and
   keep the best ``k``, topped up from popularity when the rules removed too many.

If the store is slower than the timeout or unreachable, the answer is the popularity list under
the same rules, marked ``degraded`` and counted; the request does not fail.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shelfops.data.consent import PERSONALIZATION_OPT_OUT, personalization_allowed
from shelfops.features.definitions import (
    BEHAVIOUR_VIEW,
    CATALOG_VIEW,
    CONSENT_VIEW,
    MERCH_SERVICE,
    RECS_SERVICE,
)
from shelfops.features.store import FeatureRepo
from shelfops.monitoring.store import recs_outputs
from shelfops.predictors.recs import RecsPredictor
from shelfops.serving.base import BadRequest, ModelServer
from shelfops.serving.online import OnlineReader
from shelfops.serving.rules import (
    Candidate,
    CatalogEntry,
    MerchRules,
    allowed,
    apply_rules,
    catalog_from_online,
    is_surplus,
)
from shelfops.serving.schemas import RecommendedItem, RecommendRequest, RecommendResponse

log = logging.getLogger(__name__)

CATALOG_TIMEOUT_S = 30.0
"""The catalogue snapshot is one bulk read off the request path: it may take longer."""

DEFAULT_RULES = Path(__file__).with_name("merchandising.yaml")
"""The rules shipped with ShelfOps (``SHELFOPS_SERVING_RULES_FILE`` overrides them)."""


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


class RecsServer(ModelServer):
    """Serves the recommendation model."""

    name = "recs"

    def _load(self, model_dir: Path) -> None:
        import torch

        torch.set_num_threads(1)  # one request per thread; intra-op threads only add contention
        self.predictor = RecsPredictor.from_path(model_dir)
        self.predictor.tag = self.tag
        stats = self.predictor.model.stats
        self.items: list[str] = list(stats.items)
        self.popular: list[int] = [int(j) for j in stats.popular_order()]
        self.recommendable = np.asarray(stats.recommendable, bool)
        self.rules = (
            MerchRules.from_text(self.serving.rules_yaml)
            if self.serving.rules_yaml
            else MerchRules.from_yaml(self.serving.rules_file or DEFAULT_RULES)
        )
        self.online = OnlineReader(
            lambda: FeatureRepo(self.settings), self.serving.online_timeout_ms / 1000.0
        )
        self.catalog: dict[str, CatalogEntry] = {}
        self._refs: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._resolve_refs()
        self.refresh_catalog()
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="catalog-refresh", daemon=True
        )
        self._refresher.start()

    def _warm_up(self) -> None:
        """Score one synthetic personal row and serve one cold-start request."""
        self.recommend(RecommendRequest(customer_id="shelfops-warm-up", k=10))
        row = {
            "customer_id": "shelfops-warm-up",
            "opted_out_personalization": False,
            "top_items": self.items[:3],
            "top_item_counts": [2, 1, 1][: len(self.items[:3])],
            "top_item_last_ts": [0] * len(self.items[:3]),
        }
        self.predictor.predict([row], k=30, now=pd.Timestamp.now())

    def close(self) -> None:
        """Stop the catalogue refresher and the store threads."""
        if hasattr(self, "_stop"):
            self._stop.set()
            self.online.close()
        super().close()

    # -- online store ----------------------------------------------------------------------------
    def _resolve_refs(self) -> bool:
        if self._refs:
            return True
        try:
            recs = self.online.refs(RECS_SERVICE)
            merch = self.online.refs(MERCH_SERVICE)
        except Exception as exc:  # the registry is part of the store: unreachable means fallback
            log.warning("feature registry unavailable (%s); serving popularity until it is", exc)
            return False
        self._refs = {
            CONSENT_VIEW: recs[CONSENT_VIEW],
            BEHAVIOUR_VIEW: recs[BEHAVIOUR_VIEW],
            CATALOG_VIEW: merch[CATALOG_VIEW],
        }
        return True

    def refresh_catalog(self) -> bool:
        """Reload the merchandising snapshot (``merch_v1``) for every item the model knows.

        Returns:
            True when the snapshot was refreshed; on failure the previous one stays.
        """
        if not self._resolve_refs():
            return False
        rows, reason = self.online.read(
            self._refs[CATALOG_VIEW],
            [{"stock_code": c} for c in self.items],
            timeout_s=CATALOG_TIMEOUT_S,
        )
        if rows is None:
            log.warning("catalogue refresh failed (%s); keeping the previous snapshot", reason)
            return False
        self.catalog = catalog_from_online(rows)
        return True

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.serving.catalog_refresh_s):
            self.refresh_catalog()

    def _customer(self, customer_id: str) -> tuple[dict[str, Any], bool, str]:
        """Features for the Predictor, whether personalization is allowed, and any miss reason."""
        if not self._resolve_refs():
            return {"customer_id": customer_id}, False, "online_store_error"
        entity = [{"customer_id": customer_id}]
        consent, reason = self.online.read(self._refs[CONSENT_VIEW], entity)
        if consent is None:
            return {"customer_id": customer_id}, False, reason
        if not personalization_allowed(consent.get(PERSONALIZATION_OPT_OUT, [False]))[0]:
            return {"customer_id": customer_id, "opted_out_personalization": True}, False, ""
        behaviour, reason = self.online.read(self._refs[BEHAVIOUR_VIEW], entity)
        if behaviour is None:
            return {"customer_id": customer_id}, False, reason
        row = {k: v[0] for k, v in behaviour.items()}
        row["opted_out_personalization"] = False
        return row, bool(row.get("top_items")), ""

    # -- predictions -----------------------------------------------------------------------------
    def recommend(self, req: RecommendRequest, request_id: str | None = None) -> RecommendResponse:
        """Recommend for one customer (see the module docstring for the steps).

        Args:
            req: The validated request.
            request_id: The caller's id for this request.

        Returns:
            The response; never raises for an unknown customer or a store outage.

        Raises:
            BadRequest: ``k`` above the configured maximum.
        """
        if req.k > self.serving.max_k:
            raise BadRequest(f"k={req.k} is above the maximum of {self.serving.max_k}")
        started = time.perf_counter()
        self.delay()
        rid = self.request_id(request_id)
        row, personal, miss = self._customer(req.customer_id)
        if miss:
            self.degraded(miss)
        context = req.context
        exclude = set(context.exclude_stock_codes) if context else set()
        category = context.category if context else None
        affinity = float(row.get("discount_affinity") or 0.0) if personal else 0.0
        with self.compute:
            pool = min(len(self.items), req.k * 2 + 20)  # room for the rules to remove items
            scored = (
                self.predictor.predict([row], k=pool, now=pd.Timestamp.now())[req.customer_id]
                if personal
                else []
            )
            candidates = [
                Candidate(r["stock_code"], float(r["score"]), r)
                for r in scored
                if r["score"] is not None
                and r["stock_code"] not in exclude
                and (category is None or r["category"] == category)
            ]
            kept = apply_rules(self.rules, candidates, self.catalog, affinity, req.k)
            items = [
                RecommendedItem(
                    stock_code=c.stock_code,
                    description=str(c.payload.get("description") or ""),
                    category=str(c.payload.get("category") or "Unknown"),
                    score=score,
                    reason=str(c.payload.get("reason") or ""),
                    boosted=boosted,
                )
                for c, score, boosted in kept
            ]
            if len(items) < req.k:
                items += self._popular(
                    req.k - len(items), {i.stock_code for i in items} | exclude, category, affinity
                )
        scores = [i.score for i in items if i.score is not None]
        if scores:
            confidence = float(np.mean([_sigmoid(s) for s in scores]))
            self.metrics.prediction_confidence.labels(self.name, self.version).observe(confidence)
        response = RecommendResponse(
            request_id=rid,
            customer_id=req.customer_id,
            model_version=self.version,
            personalized=personal,
            degraded=bool(miss),
            degraded_reason=miss or None,
            items=items,
        )
        if self.hooks:  # building the record costs time; skip it when nobody listens
            self.emit(
                {
                    "model": self.name,
                    "model_version": self.version,
                    "request_id": rid,
                    "customer_id": req.customer_id,
                    "features": {k: v for k, v in row.items() if np.isscalar(v)},
                    "outputs": recs_outputs([i.model_dump() for i in items]),
                    "degraded": bool(miss),
                    "latency_ms": (time.perf_counter() - started) * 1000.0,
                }
            )
        return response

    def _popular(
        self, n: int, taken: set[str], category: str | None, affinity: float
    ) -> list[RecommendedItem]:
        """Top up with popular items that pass the rules (the non-personal list)."""
        model = self.predictor.model
        out: list[RecommendedItem] = []
        for j in self.popular:
            if len(out) >= n:
                break
            code = self.items[j]
            if code in taken or (category is not None and model.stats.category[j] != category):
                continue
            entry = self.catalog.get(code)
            if not allowed(self.rules, entry, affinity):
                continue
            boosted = is_surplus(self.rules, entry)
            out.append(
                RecommendedItem(
                    stock_code=code,
                    description=model.stats.description[j],
                    category=model.stats.category[j],
                    score=None,
                    reason=model.popular_reason(j),
                    boosted=boosted,
                )
            )
        return out

    def v2_metadata(self) -> dict[str, Any]:
        """V2 model metadata: inputs ``customer_id`` (and optional ``k``), ragged-free outputs."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [-1]},
                {"name": "k", "datatype": "INT32", "shape": [1]},
            ],
            "outputs": [
                {"name": "stock_code", "datatype": "BYTES", "shape": [-1, -1]},
                {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
                {"name": "reason", "datatype": "BYTES", "shape": [-1, -1]},
            ],
        }
