"""Served-path evaluation: what customers actually get, not only what the model ranks.

The offline evaluation scores the model's raw ranking. Customers see the *served* list: consent,
the online store, the merchandising rules on the catalogue snapshot and the popularity top-up
all stand between the two. :func:`evaluate_served` replays every evaluated customer through the
real :class:`~shelfops.serving.recs.RecsServer` code with the state as of the cutoff:

* a ShelfOps home whose feature tables are built from the data before the cutoff (behaviour,
  consent, the catalogue snapshot: prices, clearance and promotions as of the last week before
  it, discontinued items as of it), applied to Feast and materialized into its own online store;
* the model as scored at the cutoff, loaded by the server from a saved folder like any model;
* the configured merchandising rules (or the ones given), the server's top-up and the cutoff as
  the scoring clock.

It reports served Recall@10, NDCG@10 and HR@10 with the same metric code as the offline
evaluation, the same for the customers' discover lists (``*_discover_list``), and per rule how
many personal candidates it removed and for how many customers the personal list ended empty
with that rule among the removers. :func:`served_gate_check` turns the gap into a condition of
the model gate.

Known limits of the replay: the products table keeps no history, so the count of clearance
markdowns is today's, and so is inventory on hand, except that a product out of stock today that
was still selling in the four weeks before the cutoff counts as in stock then (with the units it
sold in those weeks); prices and promotions are those of the weeks before the cutoff.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.evaluation.metrics import discover_list_metrics, recs_metrics
from shelfops.models.recs import RecsModel, TrainingSlice
from shelfops.serving.rules import MerchRules
from shelfops.settings import ServingSettings, Settings
from shelfops.training.context import Context, Progress
from shelfops.training.gate import GateCheck

MAX_SERVED_GAP = 0.05
"""Largest relative shortfall of served Recall@10 against offline Recall@10 the gate accepts."""

_BATCH = 256


@dataclass
class RuleImpact:
    """What one rule did over the evaluated customers."""

    removed: int = 0
    """Personal candidates it removed."""
    emptied: int = 0
    """Customers whose personal list ended empty while this rule removed some of it."""


@dataclass
class ServedEvaluation:
    """Served metrics beside offline ones, and what each rule did."""

    cutoff: str
    served: dict[str, Any]
    offline: dict[str, Any]
    customers: int
    personalized: int
    with_personal_items: int
    rules: dict[str, RuleImpact] = field(default_factory=dict)
    degraded: int = 0
    catalogue: dict[str, int] = field(default_factory=dict)
    """Items in the catalogue snapshot, and how many were on clearance or on promotion."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of the replay's parts (``state``: the home as of the cutoff, ``replay``)."""

    def gap(self, metric: str = "recall@10") -> float:
        """Relative shortfall of the served metric against offline (0.1 = served 10% lower)."""
        off = float(self.offline.get(metric) or 0.0)
        return 0.0 if off == 0 else (off - float(self.served.get(metric) or 0.0)) / off

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return {
            "cutoff": self.cutoff,
            "served": self.served,
            "offline": self.offline,
            "recall_gap": self.gap(),
            "customers": self.customers,
            "personalized": self.personalized,
            "with_personal_items": self.with_personal_items,
            "degraded": self.degraded,
            "catalogue": self.catalogue,
            "seconds": self.seconds,
            "rules": {k: v.__dict__ for k, v in sorted(self.rules.items())},
        }


def _history(lines: pd.DataFrame, cutoff: pd.Timestamp, customers: set[str]) -> dict[str, set[str]]:
    past = lines[(lines["invoice_date"] < cutoff) & lines["customer_id"].isin(customers)]
    return {str(c): set(g.astype(str)) for c, g in past.groupby("customer_id")["stock_code"]}


def _products_at(products: pd.DataFrame, tx: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The products table as far as it can be known at ``cutoff``.

    Inventory has no history: a product that is out of stock today but was not yet discontinued
    at the cutoff and sold in the four weeks before it was in stock then; it gets the units it
    sold in those weeks (at least one) instead of today's zero. Unknown stock (no
    ``inventory_on_hand``) stays unknown, as the server reads it. Everything else is today's.
    """
    out = products.copy()
    disc = pd.to_datetime(out["discontinue_date"], errors="coerce")
    disc = disc.dt.tz_localize(None) if getattr(disc.dt, "tz", None) is not None else disc
    recent = tx[pd.to_datetime(tx["invoice_date"]) >= cutoff - pd.Timedelta(weeks=4)]
    if "is_product" in recent:
        recent = recent[recent["is_product"].astype(bool) & ~recent["is_cancellation"].astype(bool)]
    sold = recent.groupby(recent["stock_code"].astype(str))["quantity"].sum()
    codes = out["stock_code"].astype(str)
    inventory = pd.to_numeric(out["inventory_on_hand"], errors="coerce")
    selling = codes.map(sold).fillna(0).to_numpy() > 0
    live = (disc.isna() | (disc >= cutoff)).to_numpy()
    fill = (inventory.to_numpy(float) <= 0) & selling & live  # NaN (unknown) is never filled
    estimate = codes.map(sold).fillna(1).clip(lower=1).to_numpy()
    out["inventory_on_hand"] = inventory.where(~fill, estimate).round().astype("Int64")
    return out


def state_home(ctx: Context, cutoff: pd.Timestamp, root: Path, base: Settings) -> Settings:
    """A ShelfOps home holding the serving state as of ``cutoff`` (features, online store).

    Args:
        ctx: Data context with the clean tables.
        cutoff: Nothing on or after it is used.
        root: Folder of the new home.
        base: Settings to copy (consent policy, seed); the profile is always local here.

    Returns:
        Settings of the new home, its online store materialized with the views the
        recommendation server reads (recs_v1 and merch_v1).
    """
    from shelfops.features.build import build_feature_tables
    from shelfops.features.definitions import MERCH_SERVICE, RECS_SERVICE
    from shelfops.features.store import FeatureRepo

    # The replay home keeps its own registry: a cluster's SHELFOPS_FEAST_REGISTRY points at the
    # shared one, which the replay's `apply` would otherwise overwrite with its temporary sources.
    home = base.model_copy(
        update={"home": root, "profile": "local", "redis_url": None, "feast_registry": None}
    )
    tx = ctx.transactions[pd.to_datetime(ctx.transactions["invoice_date"]) < cutoff]
    products = _products_at(ctx.products, tx, cutoff)
    clean = {"transactions": tx, "customers": ctx.customers, "products": products}
    build_feature_tables(clean, home.features_dir)
    repo = FeatureRepo(home)
    repo.apply()
    end = pd.Timestamp(cutoff)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    repo.materialize(end=end.to_pydatetime(), services=(RECS_SERVICE, MERCH_SERVICE))
    return home


def configured_rules(settings: Settings, serving: ServingSettings | None = None) -> MerchRules:
    """The rules a recommendation service of this home would put in force now.

    Args:
        settings: The home (its applied rule version, if any).
        serving: Server settings (``SHELFOPS_SERVING_RULES_FILE`` / ``_YAML`` win).

    Returns:
        The rules.
    """
    from shelfops.serving.rules_store import serving_rules_path

    serving = serving or ServingSettings()
    path = serving_rules_path(settings, serving)
    return MerchRules.from_yaml(path) if path else MerchRules.from_text(serving.rules_yaml or "")


def evaluate_served(
    ctx: Context,
    model: RecsModel,
    sl: TrainingSlice,
    lines: pd.DataFrame,
    settings: Settings,
    *,
    offline: dict[str, Any],
    serving: ServingSettings | None = None,
    rules: MerchRules | None = None,
    k: int = 10,
    workdir: Path | None = None,
    progress: Progress | None = None,
) -> ServedEvaluation:
    """Replay the slice's customers through the recommendation server as of its cutoff.

    Args:
        ctx: Data context (clean tables).
        model: The model as scored offline at ``sl.cutoff``.
        sl: The evaluation slice (cutoff, evaluated customers and their first baskets).
        lines: Purchase lines (for the repeat/new split of the metrics).
        settings: The home whose rules are in force (its applied version, or the configured
            file), and the consent policy and seed of the run.
        offline: The model's offline metrics on the same slice.
        serving: Server settings (default: ``SHELFOPS_SERVING_*``).
        rules: Rules to replay instead of the ones in force (e.g. a preview of an edit).
        k: List length.
        workdir: Where the replay home goes (default: a temporary folder, removed after).
        progress: Progress messages.

    Returns:
        Served and offline metrics, counts and per-rule impact.
    """
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        say(f"served replay: materializing the state as of {sl.cutoff.date()}")
        t0 = time.perf_counter()
        home = state_home(ctx, sl.cutoff, root / "home", settings)
        model_dir = root / "model"
        model.save(model_dir)
        rules = rules or configured_rules(settings, serving)
        t1 = time.perf_counter()
        result = replay(home, model_dir, sl, lines, offline, serving, rules, k, say)
        result.seconds = {
            "state": round(t1 - t0, 2),
            "replay": round(time.perf_counter() - t1, 2),
        }
        return result


def replay(
    home: Settings,
    model_dir: Path,
    sl: TrainingSlice,
    lines: pd.DataFrame,
    offline: dict[str, Any],
    serving: ServingSettings | None = None,
    rules: MerchRules | None = None,
    k: int = 10,
    say: Progress | None = None,
) -> ServedEvaluation:
    """Replay a slice's customers through a server on a prepared state home (:func:`state_home`).

    :func:`evaluate_served` prepares the home and the model folder and calls this; callers that
    compare several rule sets on one state (a rule preview) call it once per rule set.

    Args:
        home: Settings of the state home.
        model_dir: The model folder the server loads.
        sl: The evaluation slice.
        lines: Purchase lines (repeat/new split).
        offline: The model's offline metrics on the slice.
        serving: Server settings (default: ``SHELFOPS_SERVING_*``).
        rules: Rules to replay (default: what ``serving`` names, else the shipped defaults;
            :func:`evaluate_served` passes the rules in force in the user's home).
        k: List length.
        say: Progress messages.

    Returns:
        The served evaluation.
    """
    import torch

    say = say or (lambda _m: None)
    from shelfops.serving.recs import RecsServer

    threads = torch.get_num_threads()  # the server pins one thread; the caller gets its own back
    base = serving or ServingSettings()
    # A replay is not under a request deadline: big batches must not fall back on a timeout.
    cfg = base.model_copy(update={"online_timeout_ms": 120_000.0, "max_k": max(base.max_k, k)})
    server = RecsServer(home, cfg)
    cutoff = pd.Timestamp(sl.cutoff)
    try:
        server.load(model_dir, f"replay:{cutoff.date()}")
        if rules is not None:
            server.rules = rules
        server.clock = lambda: cutoff
        snapshot = server.catalog.values()
        catalogue = {
            "items": len(snapshot),
            "on_clearance": sum(e.on_clearance for e in snapshot),
            "on_promotion": sum(e.on_promotion for e in snapshot),
        }
        customers = sorted(sl.targets)
        say(f"served replay: {len(customers):,} customers through the recommendation server")
        served: dict[str, list[str]] = {}
        impact: dict[str, RuleImpact] = {}
        personalized = with_personal = degraded = 0
        for s in range(0, len(customers), _BATCH):
            part = customers[s : s + _BATCH]
            for resp in server.recommend_many(part, k, explain=True, synthetic=True):
                served[resp.customer_id] = [i.stock_code for i in resp.items]
                degraded += int(resp.degraded)
                removed = Counter(r.rule for r in resp.removed or [] if r.source == "personal")
                for rule, n in removed.items():
                    impact.setdefault(rule, RuleImpact()).removed += n
                if not resp.personalized:
                    continue
                personalized += 1
                if any(i.source == "personal" for i in resp.items):
                    with_personal += 1
                else:
                    for rule in removed or {"(no candidates)": 0}:
                        impact.setdefault(rule, RuleImpact()).emptied += 1
        say("served replay: the same customers' discover lists")
        discover: dict[str, list[str]] = {}
        for s in range(0, len(customers), _BATCH):
            part = customers[s : s + _BATCH]
            for resp in server.recommend_many(part, k, synthetic=True, discover=True):
                discover[resp.customer_id] = [i.stock_code for i in resp.items]
    finally:
        server.close()
        torch.set_num_threads(threads)
    history = _history(lines, cutoff, set(customers))
    size = int(server.predictor.model.stats.recommendable.sum())
    metrics = recs_metrics(served, sl.targets, history, size, k)
    metrics |= discover_list_metrics(discover, sl.targets, history, k)
    return ServedEvaluation(
        cutoff=str(cutoff.date()),
        served=metrics,
        offline=offline,
        customers=len(customers),
        personalized=personalized,
        with_personal_items=with_personal,
        rules=impact,
        degraded=degraded,
        catalogue=catalogue,
    )


def served_gate_check(
    served: dict[str, Any], max_gap: float = MAX_SERVED_GAP, accepted: bool = False
) -> GateCheck:
    """The gate condition: served Recall@10 at most ``max_gap`` below the model's offline figure.

    Args:
        served: :meth:`ServedEvaluation.to_dict` (as kept in the training record).
        max_gap: Largest relative shortfall (0.05 = 5%).
        accepted: The operator explicitly accepts a larger gap (recorded in registry metadata).

    Returns:
        The check (passed when within the gap, or accepted).
    """
    gap = float(served["recall_gap"])
    srv, off = served["served"].get("recall@10"), served["offline"].get("recall@10")
    detail = (
        f"served Recall@10 {srv:.4f} is {gap:+.1%} below offline {off:.4f} under the "
        f"configured rules (limit {max_gap:.0%})"
    )
    if gap <= max_gap:
        return GateCheck("served_recall", True, detail)
    if accepted:
        return GateCheck("served_recall", True, detail + "; accepted by the operator")
    rules = served.get("rules", {})
    worst = max(rules.items(), key=lambda kv: kv[1]["removed"], default=None)
    hint = f"; {worst[0]} removed {worst[1]['removed']:,} personal candidates" if worst else ""
    return GateCheck(
        "served_recall",
        False,
        detail + hint + ": loosen the rules or pass --accept-served-gap to register anyway",
    )


def gate_checks(extra: dict[str, Any], accepted: bool = False) -> list[GateCheck]:
    """The served-path conditions of a trained model's gate (none when it was not replayed).

    Args:
        extra: The trained task's registry extras (``served`` when replayed).
        accepted: The operator's explicit acceptance of a larger gap.

    Returns:
        The checks to pass to the gate.
    """
    served = extra.get("served")
    return [served_gate_check(served, accepted=accepted)] if served else []
