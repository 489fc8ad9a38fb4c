"""The recommendation server: consent first, online features, the shared Predictor, then rules.

Per request (one customer from ``POST /recommend``, or N from one V2 request, scored as a batch):

1. Read the customers' consent flags and behaviour features from the online store in one read.
   Opted out of personalization: the non-personal popularity list, and their behaviour features
   are dropped unread. An unknown customer has no behaviour and gets the cold-start list.
2. Score the personal customers together with :class:`~shelfops.predictors.recs.RecsPredictor`
   (the one training and evaluation use), apply the merchandising rules
   (:func:`shelfops.serving.rules.apply_rules`, the one implementation) to the catalogue snapshot,
   keep the best ``k``, and top up from popularity under the same rules when they removed too many.
3. Every item says where it came from (``source``) and why (``reason``); ``explain`` also lists
   what each rule removed; ``shelfops_rule_removals_total{rule}`` counts removals.

If the store is slower than the timeout or unreachable, the answer is the popularity list under
the same rules, marked ``degraded`` and counted; the request does not fail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter

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
from shelfops.serving.online import OnlineReader, Rows
from shelfops.serving.rules import (
    REMOVING_RULES,
    CatalogEntry,
    MerchRules,
    Removal,
    RuleMasks,
    RulesError,
    catalog_from_online,
    check,
)
from shelfops.serving.rules_store import SHIPPED_RULES, serving_rules_path
from shelfops.serving.schemas import (
    ItemSource,
    RecommendContext,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    RemovedItem,
)
from shelfops.settings import ServingSettings

log = logging.getLogger(__name__)

CATALOG_TIMEOUT_S = 30.0
"""The catalogue snapshot is one bulk read off the request path: it may take longer."""

DEFAULT_RULES = SHIPPED_RULES
"""The rules shipped with ShelfOps (applied versions or ``SHELFOPS_SERVING_RULES_FILE`` win)."""


def _file_stamp(path: Path | None) -> tuple[Path, int, int, int] | None:
    """Identity of a file's current content (path, mtime, size, inode), None when unreadable."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_size, st.st_ino)


def personal_pool(k: int, n_items: int, serving: ServingSettings) -> int:
    """How many personal candidates are scored and checked against the rules for a list of ``k``.

    The headroom (``SHELFOPS_SERVING_RULE_HEADROOM``, 10) lets the rules remove some candidates
    while personal items still fill the list; the popularity top-up covers the rest. On the
    quickstart home a headroom of 10 served the same Recall@10 as 30 (0.3648 against 0.3653,
    HR@10 equal) with a third of the candidates to explain and check.

    Args:
        k: List length.
        n_items: Items the model knows.
        serving: Server settings.

    Returns:
        The pool size.
    """
    return min(n_items, k + serving.rule_headroom)


@dataclass
class CustomerState:
    """What the online store said about one customer."""

    customer_id: str
    personal: bool
    source: ItemSource
    miss: str = ""
    opted_out: bool | None = None
    """The consent flag read (None when the read failed)."""
    read: Rows | None = None
    """The batch's columns from the store, when the customer allows personalization (for an
    opted-out customer nothing read is kept)."""
    at: int = 0
    """This customer's position in ``read``."""

    @property
    def row(self) -> dict[str, Any]:
        """The customer's features as one row (the consent flag included), built on demand."""
        if self.read is None:
            return {} if self.opted_out is None else {PERSONALIZATION_OPT_OUT: self.opted_out}
        row = {k: v[self.at] for k, v in self.read.items()}
        row[PERSONALIZATION_OPT_OUT] = False
        return row

    def feature(self, name: str) -> Any:
        """One feature read for this customer (None when not read)."""
        column = self.read.get(name) if self.read is not None else None
        return None if column is None else column[self.at]


def _personal_rows(states: Sequence[CustomerState]) -> Rows:
    """The model's rows for personal customers of one read (a request's), as columns.

    Taken straight from the read's columns, without a dict per customer; all of the read, in
    order, is passed as it is.
    """
    read = states[0].read
    if read is None or any(s.read is not read for s in states):
        raise ValueError("personal customers are scored from the one read of their request")
    at = [s.at for s in states]
    if at == list(range(len(next(iter(read.values()), [])))):
        return read
    return {k: [v[i] for i in at] for k, v in read.items()}


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
        self._popular_rows = np.asarray(self.popular, np.int64)
        self._index = {code: j for j, code in enumerate(self.items)}
        self._categories = np.asarray(stats.category, dtype=object)
        self._descriptions: list[str] = [d or "" for d in stats.description]
        self._category_names: list[str] = [c or "Unknown" for c in stats.category]
        self._item_list = TypeAdapter(list[RecommendedItem])
        self._mask_cache: tuple[MerchRules, dict[str, CatalogEntry], RuleMasks] | None = None
        rules_path = serving_rules_path(self.settings, self.serving)
        self.rules = (
            MerchRules.from_yaml(rules_path)
            if rules_path is not None
            else MerchRules.from_text(self.serving.rules_yaml or "")
        )
        self.rules_error: str | None = None
        """Why the rules file on disk is not in force (it is invalid), or None."""
        self._rules_seen = _file_stamp(rules_path)
        self.clock: Callable[[], pd.Timestamp] = pd.Timestamp.now
        """Scoring time; the served-path evaluation sets it to the cutoff it replays."""
        self.online = OnlineReader(
            lambda t: FeatureRepo(self.settings, read_timeout_s=t),
            self.serving.online_timeout_ms / 1000.0,
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
        self._rules_watcher = threading.Thread(
            target=self._rules_loop, name="rules-reload", daemon=True
        )
        self._rules_watcher.start()

    def _warm_up(self) -> None:
        """Serve one cold-start request and score one synthetic personal row.

        The personal row also compiles the candidate builder (or loads it from numba's cache)
        before the server says it is ready, so no customer waits for the compiler.
        """
        self.recommend(RecommendRequest(customer_id="shelfops-warm-up", k=10), synthetic=True)
        row = {
            "customer_id": "shelfops-warm-up",
            PERSONALIZATION_OPT_OUT: False,
            "top_items": self.items[:3],
            "top_item_counts": [2, 1, 1][: len(self.items[:3])],
            "top_item_last_ts": [0] * len(self.items[:3]),
        }
        self.predictor.predict([row], k=30, now=self.clock())

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
            "customer": recs[CONSENT_VIEW] + recs[BEHAVIOUR_VIEW],
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

    def reload_rules(self) -> bool:
        """Put the rules file in force again when it changed on disk (no restart needed).

        The file is the one :func:`~shelfops.serving.rules_store.serving_rules_path` names, so a
        version applied with the console (or ``RulesStore``) is picked up. A file that no longer
        parses is reported (logged, ``rules_error``) and the rules in force stay.

        Returns:
            True when new rules were put in force.
        """
        path = serving_rules_path(self.settings, self.serving)
        stamp = _file_stamp(path)
        if path is None or stamp is None or stamp == self._rules_seen:
            return False
        self._rules_seen = stamp
        try:
            rules = MerchRules.from_yaml(path)
        except RulesError as exc:
            self.rules_error = str(exc)
            log.error("%s; the rules in force stay until the file is fixed", exc)
            return False
        self.rules, self.rules_error = rules, None
        log.info("merchandising rules reloaded from %s", path)
        return True

    def _rules_loop(self) -> None:
        while not self._stop.wait(self.serving.rules_reload_s):
            self.reload_rules()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.serving.catalog_refresh_s):
            self.refresh_catalog()

    def customers(self, customer_ids: Sequence[str]) -> list[CustomerState]:
        """Consent and behaviour of each customer, in one online-store read.

        Args:
            customer_ids: The customers.

        Returns:
            One state per id, in order; a store failure makes every state a degraded fallback.
        """
        if not self._resolve_refs():
            return [
                CustomerState(c, False, "non_personal", "online_store_error") for c in customer_ids
            ]
        rows, reason = self.online.read(
            self._refs["customer"], [{"customer_id": c} for c in customer_ids]
        )
        if rows is None:
            return [CustomerState(c, False, "non_personal", reason) for c in customer_ids]
        allowed = personalization_allowed(
            rows.get(PERSONALIZATION_OPT_OUT, [None] * len(customer_ids))
        )
        items = rows.get("top_items", [None] * len(customer_ids))
        out: list[CustomerState] = []
        for i, cid in enumerate(customer_ids):
            if not allowed[i]:
                # Consent first: whatever behaviour the read returned is dropped unused.
                out.append(CustomerState(cid, False, "non_personal", opted_out=True))
                continue
            personal = bool(items[i])
            out.append(
                CustomerState(
                    cid,
                    personal,
                    "personal" if personal else "cold_start",
                    opted_out=False,
                    read=rows,
                    at=i,
                )
            )
        return out

    # -- predictions -----------------------------------------------------------------------------
    def recommend(
        self, req: RecommendRequest, request_id: str | None = None, synthetic: bool = False
    ) -> RecommendResponse:
        """Recommend for one customer (see the module docstring for the steps).

        Args:
            req: The validated request.
            request_id: The caller's id for this request.
            synthetic: Gate, load-test or warm-up traffic: not logged for monitoring.

        Returns:
            The response; never raises for an unknown customer or a store outage.

        Raises:
            BadRequest: ``k`` above the configured maximum.
        """
        return self.recommend_many(
            [req.customer_id],
            req.k,
            context=req.context,
            request_id=request_id,
            explain=req.explain,
            synthetic=synthetic,
            discover=req.discover,
        )[0]

    def recommend_many(
        self,
        customer_ids: Sequence[str],
        k: int,
        context: RecommendContext | None = None,
        request_id: str | None = None,
        explain: bool = False,
        synthetic: bool = False,
        discover: bool = False,
    ) -> list[RecommendResponse]:
        """Recommend for several customers with one store read and one scoring batch.

        Args:
            customer_ids: The customers.
            k: List length.
            context: Optional shopping context (category, items to exclude) for all of them.
            request_id: The caller's id for this request (shared by the answers).
            explain: List the candidates the rules removed in each answer.
            synthetic: Gate, load-test or warm-up traffic: not logged for monitoring.
            discover: The discover list: the best items that are not the customer's regulars
                (:meth:`~shelfops.models.recs.RecsModel.rank`), topped up the same way.

        Returns:
            One response per customer, in order.

        Raises:
            BadRequest: ``k`` above the configured maximum.
        """
        if k > self.serving.max_k:
            raise BadRequest(f"k={k} is above the maximum of {self.serving.max_k}")
        started = time.perf_counter()
        # the cost meter leaves synthetic CPU out; measure it only when a meter listens
        cpu_started = time.thread_time() if synthetic and self.synthetic_cpu else None
        self.delay()
        rid = self.request_id(request_id)
        states = self.customers(customer_ids)
        for s in states:
            if s.miss:
                self.degraded(s.miss)
        exclude = set(context.exclude_stock_codes) if context else set()
        category = context.category if context else None
        with self.compute:
            responses = self._answers(states, k, exclude, category, rid, explain, discover)
        if synthetic:
            if cpu_started is not None:
                self.synthetic_done(cpu_started)
        elif self.hooks and not discover:
            # Building records costs time; skip it when nobody listens. Discover lists are not
            # logged: their scores are a different distribution from the main list's, which
            # drift and the reference snapshot describe (they still count in /metrics).
            latency_ms = (time.perf_counter() - started) * 1000.0
            for s, r in zip(states, responses, strict=True):
                self.emit(
                    {
                        "model": self.name,
                        "model_version": self.version,
                        "request_id": rid,
                        "customer_id": s.customer_id,
                        "features": {k: v for k, v in s.row.items() if np.isscalar(v)},
                        "outputs": recs_outputs([i.model_dump() for i in r.items]),
                        "degraded": r.degraded,
                        "latency_ms": latency_ms,
                    }
                )
        return responses

    def _masks(self) -> RuleMasks:
        """The rules in force on the catalogue snapshot, as arrays over the model's items.

        Rebuilt when either object is replaced (a catalogue refresh, a rules reload, or the
        served-path evaluation setting its own); both are replaced, never changed in place.
        """
        rules, catalog = self.rules, self.catalog
        cached = self._mask_cache
        if cached is None or cached[0] is not rules or cached[1] is not catalog:
            cached = self._mask_cache = (
                rules,
                catalog,
                RuleMasks.build(rules, catalog, self.items),
            )
        return cached[2]

    def _allowed_items(self, exclude: set[str], category: str | None) -> np.ndarray | None:
        """Items the request's context allows (None: all of them)."""
        if not exclude and category is None:
            return None
        allowed = (
            np.ones(len(self.items), bool) if category is None else self._categories == category
        )
        rows = [j for j in (self._index.get(c) for c in exclude) if j is not None]
        allowed[rows] = False
        return allowed

    def _answers(
        self,
        states: list[CustomerState],
        k: int,
        exclude: set[str],
        category: str | None,
        rid: str,
        explain: bool,
        discover: bool = False,
    ) -> list[RecommendResponse]:
        """Score the personal customers as one batch, apply the rules as array masks, answer.

        The model ranks ``k`` + headroom candidates per personal customer
        (:meth:`~shelfops.predictors.recs.RecsPredictor.rank`); the rules remove candidates
        (:class:`~shelfops.serving.rules.RuleMasks`, from :func:`~shelfops.serving.rules.check`),
        surplus items get the boost, the best ``k`` kept are served in score order (ties keep
        the model's order), and a list left short is topped up from popularity under the same
        rules. Objects and reasons are built only for the items served. A discover list ranks
        and tops up without the customer's regulars.
        """
        masks = self._masks()
        allowed = self._allowed_items(exclude, category)
        personal = [i for i, s in enumerate(states) if s.personal]
        affinity = np.asarray(
            [float(s.feature("discount_affinity") or 0.0) if s.personal else 0.0 for s in states],
            np.float64,
        )
        served: dict[int, tuple[list[RecommendedItem], list[Removal]]] = {}
        skip: dict[int, list[int]] = {}  # a discover list's regulars, kept out of its top-up
        counts = np.zeros(len(REMOVING_RULES) + 1, np.int64)
        confidence: dict[int, float] = {}
        if personal:
            pool = personal_pool(k, len(self.items), self.serving)
            ranked = self.predictor.rank(
                _personal_rows([states[i] for i in personal]), pool, self.clock(), discover
            )
            scores = ranked.scores.astype(np.float64)
            items = np.maximum(ranked.items, 0)
            ok = (ranked.items >= 0) & np.isfinite(scores)  # model top-ups are left to ours
            if allowed is not None:
                ok &= allowed[items]
            rule = np.where(ok, masks.removed_by(items, affinity[personal]), 0)
            kept = ok & (rule == 0)
            counts += np.bincount(rule[ok].ravel(), minlength=len(counts))
            boosted = kept & masks.surplus[items]
            final = scores + np.where(boosted, masks.boost, 0.0)
            order = np.argsort(np.where(kept, -final, np.inf), axis=1, kind="stable")[:, :k]
            n_served = np.minimum(kept.sum(axis=1), k)
            n_kept = n_served.tolist()
            order_l, items_l = order.tolist(), items.tolist()
            final_l, boosted_l = final.tolist(), boosted.tolist()
            # confidence: the mean sigmoid of the served scores (exp capped where it is 0)
            at_row = np.arange(len(personal))
            served_sig = 1.0 / (1.0 + np.exp(np.minimum(-final[at_row[:, None], order], 700.0)))
            sums = np.cumsum(served_sig, axis=1)[at_row, np.maximum(n_served - 1, 0)]
            mean_sig = (sums / np.maximum(n_served, 1)).tolist()
            confidence = {i: mean_sig[r] for r, i in enumerate(personal) if n_kept[r]}
            at_r = [r for r in range(len(personal)) for _ in range(n_kept[r])]
            at_c = [c for r in range(len(personal)) for c in order_l[r][: n_kept[r]]]
            reasons = iter(self.predictor.reasons(ranked, at_r, at_c))  # served items only
            codes, descriptions, categories = self.items, self._descriptions, self._category_names
            for r, i in enumerate(personal):
                row_items = items_l[r]
                out = self._item_list.validate_python(  # one call: cheaper than per item
                    [
                        {
                            "stock_code": codes[j],
                            "description": descriptions[j],
                            "category": categories[j],
                            "score": final_l[r][c],
                            "reason": next(reasons),
                            "boosted": boosted_l[r][c],
                            "source": "personal",
                        }
                        for c in order_l[r][: n_kept[r]]
                        for j in (row_items[c],)
                    ]
                )
                removals = (
                    self._removals(
                        [row_items[c] for c in np.flatnonzero(rule[r]).tolist()], affinity[i]
                    )
                    if explain
                    else []
                )
                served[i] = (out, removals)
                if discover:
                    skip[i] = self.predictor.regulars(ranked, r)
        self._count_removals(counts, "personal")
        pop_counts = np.zeros_like(counts)
        responses = []
        for i, state in enumerate(states):
            items_i, removed_i = served.get(i, ([], []))
            listed: list[RemovedItem] = [
                RemovedItem(
                    stock_code=r.stock_code, rule=r.rule, reason=r.reason, source="personal"
                )
                for r in removed_i
            ]
            if len(items_i) < k:
                fill_source: ItemSource = "popularity_top_up" if state.personal else state.source
                extra, dropped = self._popular(
                    k - len(items_i),
                    items_i,
                    allowed,
                    float(affinity[i]),
                    fill_source,
                    pop_counts,
                    explain,
                    skip.get(i, ()),
                )
                items_i = items_i + extra
                listed += [
                    RemovedItem(
                        stock_code=r.stock_code, rule=r.rule, reason=r.reason, source=fill_source
                    )
                    for r in dropped
                ]
            responses.append(
                self._response(state, items_i, listed, rid, explain, confidence.get(i))
            )
        self._count_removals(pop_counts, "popularity")
        return responses

    def _response(
        self,
        state: CustomerState,
        items: list[RecommendedItem],
        removed: list[RemovedItem],
        rid: str,
        explain: bool,
        confidence: float | None,
    ) -> RecommendResponse:
        """One customer's answer; its ``confidence`` (None without model scores) is observed.

        ``confidence`` is the mean sigmoid of the served model scores.
        """
        if confidence is not None:
            self._confidence_metric().observe(confidence)
        return RecommendResponse(
            request_id=rid,
            customer_id=state.customer_id,
            model_version=self.version,
            personalized=state.personal,
            degraded=bool(state.miss),
            degraded_reason=state.miss or None,
            items=items,
            removed=removed if explain else None,
        )

    def _confidence_metric(self) -> Any:
        """The confidence histogram's series for this model version (labels resolved once)."""
        key = (self.metrics, self.version)
        cached = self.__dict__.get("_confidence_series")
        if cached is None or cached[0][0] is not key[0] or cached[0][1] != key[1]:
            series = self.metrics.prediction_confidence.labels(self.name, self.version)
            self.__dict__["_confidence_series"] = cached = (key, series)
        return cached[1]

    def _removals(self, rows: list[int], affinity: float) -> list[Removal]:
        """What the rules say about items they removed (worded by :func:`check`)."""
        out = []
        for j in rows:
            code = self.items[j]
            removal = check(self.rules, self.catalog.get(code), affinity)
            if removal is not None:
                out.append(Removal(code, removal.rule, removal.reason))
        return out

    def _count_removals(self, counts: np.ndarray, source: str) -> None:
        """Add removals (``counts[1 + i]`` for ``REMOVING_RULES[i]``) to the rule metric."""
        for code in np.flatnonzero(counts[1:]).tolist():
            self.metrics.rule_removals.labels(self.name, REMOVING_RULES[code], source).inc(
                int(counts[code + 1])
            )

    def _popular(
        self,
        n: int,
        taken: list[RecommendedItem],
        allowed: np.ndarray | None,
        affinity: float,
        source: ItemSource,
        counts: np.ndarray,
        explain: bool,
        skip: Sequence[int] = (),
    ) -> tuple[list[RecommendedItem], list[Removal]]:
        """Popular items that pass the rules, and the popular items the rules removed.

        Walks the popularity order past what is taken, skipped (item rows: a discover list's
        regulars) or out of context, keeping the first ``n`` items the rules allow; removals are
        those met before the ``n``-th kept item (added to ``counts``; worded only with
        ``explain``).
        """
        masks = self._masks()
        rows = self._popular_rows
        if allowed is not None:
            rows = rows[allowed[rows]]
        if taken or skip:
            gone = np.asarray([*(self._index[i.stock_code] for i in taken), *skip], np.int64)
            rows = rows[~np.isin(rows, gone)]
        rule = masks.removed_by(rows, affinity)
        kept_at = np.flatnonzero(rule == 0)
        if len(kept_at) >= n:
            end = int(kept_at[n - 1]) + 1 if n > 0 else 0
            rows, rule = rows[:end], rule[:end]
        counts += np.bincount(rule, minlength=len(counts))
        model = self.predictor.model
        out = [
            RecommendedItem(
                stock_code=self.items[j],
                description=model.stats.description[j],
                category=model.stats.category[j],
                score=None,
                reason=model.popular_reason(j),
                boosted=bool(masks.surplus[j]),
                source=source,
            )
            for j in rows[rule == 0].tolist()
        ]
        removed = self._removals(rows[rule > 0].tolist(), affinity) if explain else []
        return out, removed

    def v2_metadata(self) -> dict[str, Any]:
        """V2 model metadata: inputs ``customer_id`` (and optional ``k``), ragged-free outputs."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [-1]},
                {"name": "k", "datatype": "INT32", "shape": [1]},
                {"name": "discover", "datatype": "BOOL", "shape": [1]},
            ],
            "outputs": [
                {"name": "stock_code", "datatype": "BYTES", "shape": [-1, -1]},
                {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
                {"name": "reason", "datatype": "BYTES", "shape": [-1, -1]},
                {"name": "source", "datatype": "BYTES", "shape": [-1, -1]},
            ],
        }
