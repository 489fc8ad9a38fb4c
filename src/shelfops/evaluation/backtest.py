"""Backtest and training orchestration: the protocol of DESIGN.md as one function each.

``run_backtest`` ingests a transactions file with the production importer into a backtest home,
builds the feature tables and the Feast repo there, trains both models strictly before the cutoff
(early stopping and the success gate on a validation window that also ends before the cutoff),
evaluates after it beside every baseline and returns a JSON-able result.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shelfops.evaluation.metrics import (
    DemandEval,
    demand_metrics,
    naive_scale,
    recs_metrics,
    relative_improvement,
)
from shelfops.features.definitions import DEMAND_SERVICE, RECS_SERVICE
from shelfops.models.baselines import (
    DEMAND_BASELINES,
    demand_baselines,
    item_popularity,
    personal_frequency,
    wide_panel,
)
from shelfops.models.demand import DemandConfig, DemandModel, fit_demand
from shelfops.models.recs import (
    RecsConfig,
    RecsModel,
    TrainingSlice,
    first_baskets,
    fit_recs,
    item_stats,
    purchase_lines,
)
from shelfops.settings import Settings

if TYPE_CHECKING:
    from shelfops.registry import GateResult

Progress = Callable[[str], None]
_WEEK = pd.Timedelta(days=7)


class FeatureSource:
    """What the models need from the feature store (``FeatureRepo`` satisfies it)."""

    def feature_names(self, service: str) -> list[str]:  # pragma: no cover - protocol
        """Feature names of a service."""
        raise NotImplementedError

    def historical(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover
        """Point-in-time rows."""
        raise NotImplementedError


@dataclass
class Context:
    """Everything both tasks read: clean tables, the weekly panel, the feature source."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    products: pd.DataFrame
    panel: pd.DataFrame
    source: Any  # FeatureSource-like (FeatureRepo)
    data_end: pd.Timestamp  # Monday after the last complete week
    timings: dict[str, float] = field(default_factory=dict)


def monday(ts: pd.Timestamp | str) -> pd.Timestamp:
    """The Monday 00:00 on or before ``ts`` (naive)."""
    t = pd.Timestamp(ts).tz_localize(None).normalize()
    return t - pd.Timedelta(days=t.weekday())


def _hist(source: Any, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
    out = source.historical(service, entity_df)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    key = entity_df.columns[0]
    # Feast does not promise row order; sorting keeps training deterministic.
    return out.sort_values([key, "event_timestamp"], kind="stable").reset_index(drop=True)


def _utc(ts: pd.Series | pd.Timestamp | np.ndarray) -> Any:
    if isinstance(ts, pd.Timestamp):
        return ts.tz_localize("UTC")
    return pd.to_datetime(ts).dt.tz_localize("UTC")


# ------------------------------------------------------------------------------------------------
# Demand
# ------------------------------------------------------------------------------------------------
def demand_eval_inputs(panel: pd.DataFrame, cutoff: pd.Timestamp, codes: list[str]) -> DemandEval:
    """RMSSE scales (training naive error from first sale) and revenue weights (last 13 weeks).

    Args:
        panel: Weekly panel.
        cutoff: Forecast origin.
        codes: Evaluated products.

    Returns:
        Scales and weights.
    """
    wide = wide_panel(panel, cutoff).reindex(codes)
    scales = pd.Series([naive_scale(r[~np.isnan(r)]) for r in wide.to_numpy()], index=codes)
    recent = panel[(panel["week_start"] < cutoff) & (panel["week_start"] >= cutoff - 13 * _WEEK)]
    rev = recent.groupby(recent["stock_code"].astype(str))["revenue"].sum()
    return DemandEval(scales=scales, weights=rev.reindex(codes).fillna(0.0))


def _eval_products(panel: pd.DataFrame, origin: pd.Timestamp) -> list[str]:
    recent = panel[(panel["week_start"] < origin) & (panel["week_start"] >= origin - 13 * _WEEK)]
    sold = recent.groupby(recent["stock_code"].astype(str))["units"].sum()
    return sorted(sold[sold > 0].index)


def _score_demand(
    forecasts: dict[str, pd.DataFrame],
    panel: pd.DataFrame,
    origin: pd.Timestamp,
    horizon: int,
    label_end: pd.Timestamp,
    codes: list[str],
) -> dict[str, dict[str, Any]]:
    weeks_end = min(origin + horizon * _WEEK, label_end)
    act = panel[(panel["week_start"] >= origin) & (panel["week_start"] < weeks_end)]
    act = act.assign(stock_code=act["stock_code"].astype(str))[
        ["stock_code", "week_start", "units"]
    ]
    ev = demand_eval_inputs(panel, origin, codes)
    out = {}
    for name, fr in forecasts.items():
        fr = fr[fr["week_start"] < weeks_end].assign(
            stock_code=lambda f: f["stock_code"].astype(str)
        )
        fr = fr.merge(act, on=["stock_code", "week_start"], how="left")
        fr["actual"] = fr["units"].fillna(0.0)
        out[name] = demand_metrics(fr, ev)
    return out


def _demand_rows(
    ctx: Context, origins: list[pd.Timestamp], codes_per_origin: dict[pd.Timestamp, list[str]]
) -> pd.DataFrame:
    ent = pd.DataFrame(
        {
            "stock_code": [c for o in origins for c in codes_per_origin[o]],
            "event_timestamp": [o for o in origins for _ in codes_per_origin[o]],
        }
    )
    if ent.empty:
        return ent
    ent["event_timestamp"] = _utc(ent["event_timestamp"])
    return _hist(ctx.source, DEMAND_SERVICE, ent)


def train_demand(
    ctx: Context, cutoff: pd.Timestamp, config: DemandConfig, say: Progress
) -> tuple[DemandModel, dict[str, Any]]:
    """Train the demand model strictly before ``cutoff`` with a validation window before it.

    Phase 1 trains on labels before ``cutoff - H`` weeks and early-stops on the forecast made at
    that validation origin; phase 2 refits on all labels before ``cutoff`` for the best epoch
    count. Validation metrics of phase 1 and of every baseline feed the success gate.

    Args:
        ctx: Data context.
        cutoff: First week that must not be read (a Monday).
        config: Hyper-parameters.
        say: Progress messages.

    Returns:
        The refitted model and ``{"validation": {model, baselines}, "rows": ...}``.
    """
    h = config.horizon
    valid_origin = cutoff - h * _WEEK
    features = ctx.source.feature_names(DEMAND_SERVICE)
    panel = ctx.panel
    wide_all = wide_panel(panel, ctx.data_end)
    # Training origins: every Monday with at least one labelled week, products that sold in the
    # 13 weeks before it; sub-sampled to the row budget before asking the feature store.
    w = wide_all.loc[:, wide_all.columns < cutoff]
    sold13 = w.fillna(0.0).T.rolling(13, min_periods=1).sum().T  # through week column
    rng = np.random.default_rng(config.seed)
    pairs_p, pairs_o = np.nonzero(sold13.to_numpy() > 0)
    origins = pd.DatetimeIndex(w.columns[pairs_o]) + _WEEK
    keep = origins < cutoff
    pairs_p, origins = pairs_p[keep], origins[keep]
    n_pairs = len(pairs_p)
    budget = int(config.max_train_rows * 1.15)
    if n_pairs > budget:
        pick = np.sort(rng.choice(n_pairs, size=budget, replace=False))
        pairs_p, origins = pairs_p[pick], origins[pick]
    t0 = time.perf_counter()
    ent = pd.DataFrame(
        {
            "stock_code": w.index.to_numpy()[pairs_p].astype(str),
            "event_timestamp": _utc(pd.Series(origins)),
        }
    )
    rows = _hist(ctx.source, DEMAND_SERVICE, ent)
    valid_codes = _eval_products(panel, valid_origin)
    vrows = _demand_rows(ctx, [valid_origin], {valid_origin: valid_codes})
    ctx.timings["demand_features_s"] = time.perf_counter() - t0
    say(f"demand: {len(rows):,} training rows, {len(valid_codes):,} validation products")
    tr = rows[rows["event_timestamp"].dt.tz_localize(None) < valid_origin]
    m1 = fit_demand(
        tr, wide_all, features, valid_origin, config, valid_rows=vrows, valid_end=cutoff
    )
    say(f"demand: best epoch {m1.history['best_epoch']}, refitting to the cutoff")
    val = _score_demand(
        {"model": m1.predict(vrows), **demand_baselines(panel, valid_origin, valid_codes, h)},
        panel,
        valid_origin,
        h,
        cutoff,
        valid_codes,
    )
    model = fit_demand(
        rows, wide_all, features, cutoff, config, epochs=max(1, int(m1.history["best_epoch"]))
    )
    model.history["validation_best_epoch"] = m1.history["best_epoch"]
    model.history["valid_loss"] = m1.history["valid_loss"]
    return model, {
        "validation": val,
        "validation_origin": str(valid_origin.date()),
        "training_rows": len(rows),
    }


def evaluate_demand(
    ctx: Context,
    model: DemandModel,
    cutoff: pd.Timestamp,
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """Forecast from ``cutoff`` and score the model and every baseline on the weeks after it.

    Args:
        ctx: Data context.
        model: The trained model.
        cutoff: Forecast origin.

    Returns:
        ``({name: metrics}, model forecasts with actuals)``.
    """
    h = model.config.horizon
    codes = _eval_products(ctx.panel, cutoff)
    rows = _demand_rows(ctx, [cutoff], {cutoff: codes})
    fc = model.predict(rows)
    scores = _score_demand(
        {"model": fc, **demand_baselines(ctx.panel, cutoff, codes, h)},
        ctx.panel,
        cutoff,
        h,
        ctx.data_end,
        codes,
    )
    act = ctx.panel.assign(stock_code=ctx.panel["stock_code"].astype(str))
    fc = fc.merge(
        act[["stock_code", "week_start", "units"]], on=["stock_code", "week_start"], how="left"
    ).rename(columns={"units": "actual"})
    return scores, fc


# ------------------------------------------------------------------------------------------------
# Recommendations
# ------------------------------------------------------------------------------------------------
def _recs_rows(ctx: Context, customers: list[str], at: pd.Timestamp) -> pd.DataFrame:
    if not customers:
        return pd.DataFrame(columns=["customer_id", "event_timestamp"])
    ent = pd.DataFrame({"customer_id": customers, "event_timestamp": _utc(at)})
    rows = _hist(ctx.source, RECS_SERVICE, ent)
    return rows


def _consented(rows: pd.DataFrame, config: RecsConfig) -> pd.DataFrame:
    col = config.opt_out_feature
    if col in rows:
        rows = rows[~rows[col].astype("boolean").fillna(False).to_numpy(bool)]
    return rows


def _buyers_before(lines: pd.DataFrame, at: pd.Timestamp) -> set[str]:
    return set(
        lines.loc[
            (lines["invoice_date"] < at) & lines["customer_id"].notna(), "customer_id"
        ].astype(str)
    )


def _slice(
    ctx: Context,
    lines: pd.DataFrame,
    items: list[str],
    at: pd.Timestamp,
    label_end: pd.Timestamp,
    config: RecsConfig,
) -> TrainingSlice:
    targets = first_baskets(lines, at, label_end, _buyers_before(lines, at))
    rows = _consented(_recs_rows(ctx, sorted(targets), at), config)
    allowed = set(rows["customer_id"].astype(str))
    targets = {c: t for c, t in targets.items() if c in allowed}
    stats = item_stats(lines, ctx.products, at, items, config)
    return TrainingSlice(cutoff=at, rows=rows, stats=stats, targets=targets)


def _recs_scores(
    lines: pd.DataFrame, sl: TrainingSlice, model: RecsModel | None, k: int = 10
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    stats = sl.stats
    allowed = [stats.items[i] for i in np.flatnonzero(stats.recommendable)]
    custs = sorted(sl.targets)
    past = lines[(lines["invoice_date"] < sl.cutoff) & lines["customer_id"].isin(set(custs))]
    history = {str(c): set(g.astype(str)) for c, g in past.groupby("customer_id")["stock_code"]}
    popular = item_popularity(lines, sl.cutoff, 4, allowed)
    ranked: dict[str, dict[str, list[str]]] = {
        "popularity": {c: popular[:k] for c in custs},
        "personal_frequency": personal_frequency(lines, sl.cutoff, custs, k, popular, allowed),
    }
    recs: dict[str, list[Any]] = {}
    if model is not None:
        recs = model.recommend(sl.rows, k=k, now=sl.cutoff)
        ranked = {"model": {c: [r.stock_code for r in v] for c, v in recs.items()}, **ranked}
    size = int(stats.recommendable.sum())
    return (
        {name: recs_metrics(r, sl.targets, history, size, k) for name, r in ranked.items()},
        recs,
    )


def train_recs(
    ctx: Context, cutoff: pd.Timestamp, config: RecsConfig, say: Progress
) -> tuple[RecsModel, dict[str, Any]]:
    """Train the recommender on several cutoffs strictly before ``cutoff``.

    Phase 1 trains on cutoffs 2..n (targets before the validation cutoff) and early-stops on the
    validation cutoff (``cutoff`` minus the spacing, targets before ``cutoff``); phase 2 refits
    on all cutoffs for the best epoch count.

    Args:
        ctx: Data context.
        cutoff: Nothing on or after it is read.
        config: Hyper-parameters.
        say: Progress messages.

    Returns:
        The model (serving with item statistics as of ``cutoff``) and validation metrics.
    """
    lines = purchase_lines(ctx.transactions)
    lines = lines[lines["invoice_date"] < cutoff]
    items = sorted(lines["stock_code"].unique().tolist())
    features = ctx.source.feature_names(RECS_SERVICE)
    sp = config.cutoff_spacing_weeks * _WEEK
    cuts = [cutoff - k * sp for k in range(1, config.train_cutoffs + 1)]
    first = lines["invoice_date"].min()
    cuts = [c for c in cuts if c > first + 4 * _WEEK] or [cutoff - sp]
    t0 = time.perf_counter()
    valid = _slice(ctx, lines, items, cuts[0], cutoff, config)
    phase1 = [_slice(ctx, lines, items, c, cuts[0], config) for c in cuts[1:]]
    ctx.timings["recs_features_s"] = time.perf_counter() - t0
    say(
        f"recs: {sum(len(s.targets) for s in phase1):,} training baskets, "
        f"{len(valid.targets):,} validation baskets"
    )
    m1 = fit_recs(phase1 or [valid], valid.stats, features, config, valid=[valid] if phase1 else [])
    val, _ = _recs_scores(lines, valid, m1)
    say(f"recs: best epoch {m1.history['best_epoch']}, refitting to the cutoff")
    refit = [valid, *[_slice(ctx, lines, items, c, cutoff, config) for c in cuts[1:]]]
    final_stats = item_stats(lines, ctx.products, cutoff, items, config)
    model = fit_recs(
        refit, final_stats, features, config, epochs=max(1, int(m1.history["best_epoch"]))
    )
    model.history["validation_best_epoch"] = m1.history["best_epoch"]
    model.history["valid_loss"] = m1.history["valid_loss"]
    return model, {
        "validation": val,
        "validation_cutoff": str(cuts[0].date()),
        "training_customers": int(sum(len(s.targets) for s in refit)),
        "excluded_opted_out": _opted_out_count(ctx),
    }


def _opted_out_count(ctx: Context) -> int:
    c = ctx.customers
    if "opted_out_personalization" not in c:
        return 0
    return int(c["opted_out_personalization"].astype("boolean").fillna(False).sum())


def evaluate_recs(
    ctx: Context,
    model: RecsModel,
    cutoff: pd.Timestamp,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]], TrainingSlice]:
    """Score the recommender and the baselines on each customer's first basket after ``cutoff``.

    Args:
        ctx: Data context.
        model: Trained model.
        cutoff: Evaluation cutoff.

    Returns:
        ``({name: metrics}, model recommendations, the evaluation slice)``.
    """
    lines = purchase_lines(ctx.transactions)
    sl = _slice(ctx, lines, model.stats.items, cutoff, ctx.data_end + _WEEK * 1000, model.config)
    sl.stats = model.stats
    scores, recs = _recs_scores(lines, sl, model)
    return scores, recs, sl


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------
def load_context(settings: Settings, say: Progress, build_features: bool = True) -> Context:
    """Read the clean tables of a home, build feature tables and apply the Feast repo.

    Args:
        settings: Settings whose home holds ingested clean data.
        say: Progress messages.
        build_features: Rebuild the feature tables and apply the repo first.

    Returns:
        The context.
    """
    from shelfops.data.ingest import load_clean
    from shelfops.features.build import build_feature_tables, weekly_sales
    from shelfops.features.store import FeatureRepo

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    clean = load_clean(settings.root)
    tx = clean["transactions"]
    if build_features:
        say("building feature tables")
        build_feature_tables(clean, settings.features_dir)
    repo = FeatureRepo(settings)
    if build_features:
        say("applying the Feast repo")
        repo.apply()
    panel = weekly_sales(tx)
    panel["stock_code"] = panel["stock_code"].astype(str)
    last_day = pd.Timestamp(tx["invoice_date"].max()).normalize()
    end = monday(last_day)
    if last_day.weekday() == 6:  # the last week is complete
        end = end + _WEEK
    panel = panel[panel["week_start"] < end]
    timings["features_s"] = time.perf_counter() - t0
    return Context(
        transactions=tx,
        customers=clean["customers"],
        products=clean["products"],
        panel=panel,
        source=repo,
        data_end=end,
        timings=timings,
    )


def _table(scores: dict[str, dict[str, Any]], key: str, lower: bool) -> dict[str, Any]:
    model = float(scores["model"][key])
    out = {}
    for name, s in scores.items():
        if name != "model":
            out[name] = relative_improvement(model, float(s[key]), lower)
    return out


def _clean_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def run_backtest(
    transactions_path: Path,
    cutoff: str | pd.Timestamp,
    settings: Settings,
    horizon_weeks: int = 13,
    customers_path: Path | None = None,
    products_path: Path | None = None,
    progress: Progress | None = None,
    demand_config: DemandConfig | None = None,
    recs_config: RecsConfig | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run the whole backtest and return the JSON-able result.

    Args:
        transactions_path: Transactions export (8-column schema, CSV or XLSX).
        cutoff: First day not used for training (moved back to its Monday).
        settings: Settings; the run lives under ``<home>/backtests/<file>-<cutoff>``.
        horizon_weeks: Demand horizon.
        customers_path: Optional customers file.
        products_path: Optional products file.
        progress: Progress messages.
        demand_config: Demand hyper-parameters (horizon is overridden).
        recs_config: Recommender hyper-parameters.
        report: Write the HTML report.

    Returns:
        ``{"cutoff", "demand": {...}, "recommendations": {...}, "wall_time_s", ...}``.
    """
    from shelfops.data.ingest import ingest
    from shelfops.settings import QualityThresholds

    say = progress or (lambda _m: None)
    started = time.perf_counter()
    cut = monday(cutoff)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", transactions_path.stem)
    home = settings.root / "backtests" / f"{stem}-{cut.date()}"
    bt = settings.model_copy(update={"home": home})
    say(f"ingesting {transactions_path.name}")
    t0 = time.perf_counter()
    ingest(
        transactions_path,
        bt.root,
        customers_path=customers_path,
        products_path=products_path,
        policy=settings.consent_policy,
        thresholds=QualityThresholds(max_staleness_days=None),
        progress=say,
    )
    t_ingest = time.perf_counter() - t0
    ctx = load_context(bt, say)
    ctx.timings["ingest_s"] = t_ingest
    if cut >= ctx.data_end:
        raise ValueError(
            f"cutoff {cut.date()} leaves no complete week after it "
            f"(data ends {ctx.data_end.date()})"
        )
    dcfg = demand_config or DemandConfig(seed=settings.seed)
    dcfg.horizon = horizon_weeks
    rcfg = recs_config or RecsConfig(seed=settings.seed)

    say("training the demand model")
    t0 = time.perf_counter()
    dmodel, dinfo = train_demand(ctx, cut, dcfg, say)
    ctx.timings["demand_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dscores, forecasts = evaluate_demand(ctx, dmodel, cut)
    ctx.timings["demand_eval_s"] = time.perf_counter() - t0
    say("training the recommender")
    t0 = time.perf_counter()
    rmodel, rinfo = train_recs(ctx, cut, rcfg, say)
    ctx.timings["recs_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rscores, recs, sl = evaluate_recs(ctx, rmodel, cut)
    ctx.timings["recs_eval_s"] = time.perf_counter() - t0

    weeks_after = int(min(horizon_weeks, (ctx.data_end - cut) / _WEEK))
    result: dict[str, Any] = {
        "transactions": str(transactions_path),
        "cutoff": str(cut.date()),
        "data_end": str((ctx.data_end - pd.Timedelta(days=1)).date()),
        "seed": settings.seed,
        "demand": {
            "model": dscores["model"],
            "baselines": {k: dscores[k] for k in DEMAND_BASELINES},
            "relative_improvement_wrmsse": _table(dscores, "wrmsse", True),
            "products_evaluated": dscores["model"]["products"],
            "horizon_weeks": horizon_weeks,
            "weeks_evaluated": weeks_after,
            "validation": dinfo["validation"],
            "validation_origin": dinfo["validation_origin"],
            "training_rows": dinfo["training_rows"],
            "wall_time_s": ctx.timings["demand_train_s"] + ctx.timings["demand_eval_s"],
        },
        "recommendations": {
            "model": rscores["model"],
            "baselines": {k: v for k, v in rscores.items() if k != "model"},
            "relative_improvement_recall@10": _table(rscores, "recall@10", False),
            "customers_evaluated": rscores["model"]["customers"],
            "catalogue_size": int(rmodel.stats.recommendable.sum()),
            "validation": rinfo["validation"],
            "validation_cutoff": rinfo["validation_cutoff"],
            "training_customers": rinfo["training_customers"],
            "excluded_opted_out": rinfo["excluded_opted_out"],
            "wall_time_s": ctx.timings["recs_train_s"] + ctx.timings["recs_eval_s"],
        },
        "timings_s": dict(ctx.timings),
        "wall_time_s": time.perf_counter() - started,
        "home": str(bt.root),
    }
    result = _clean_json(result)
    if report:
        from shelfops.reports.html import write_report

        say("writing the report")
        path = write_report(
            bt.reports_dir / "backtest",
            "ShelfOps backtest",
            result,
            forecasts=forecasts,
            recs_model=rmodel,
            recs=recs,
            transactions=ctx.transactions,
            products=ctx.products,
            rows=sl.rows,
        )
        result["report"] = str(path)
        result["wall_time_s"] = time.perf_counter() - started
    (bt.reports_dir).mkdir(parents=True, exist_ok=True)
    (bt.reports_dir / "backtest.json").write_text(json.dumps(result, indent=2))
    return result


@dataclass
class TrainedTask:
    """One trained model with what its gate and its registry entry need."""

    task: str  # "demand" or "recs"
    model: Any  # DemandModel or RecsModel
    validation: dict[str, dict[str, Any]]  # {"model": metrics, baseline: metrics, ...}
    extra: dict[str, Any]  # task-specific registry metadata
    seconds: float


# task -> (gated metric, lower is better)
GATED_METRIC: dict[str, tuple[str, bool]] = {
    "demand": ("wrmsse", True),
    "recs": ("recall@10", False),
}


def data_window(ctx: Context) -> dict[str, str]:
    """First and last day of the data a model is trained on.

    Args:
        ctx: Data context.

    Returns:
        ``{"start": YYYY-MM-DD, "end": YYYY-MM-DD}``.
    """
    first_day = str(pd.Timestamp(ctx.transactions["invoice_date"].min()).date())
    return {"start": first_day, "end": str((ctx.data_end - pd.Timedelta(days=1)).date())}


def train_task(
    ctx: Context, settings: Settings, task: str, horizon_weeks: int, say: Progress
) -> TrainedTask:
    """Train one model on all data before the data end, with its validation metrics.

    Args:
        ctx: Data context (:func:`load_context`).
        settings: Settings (the seed).
        task: ``demand`` or ``recs``.
        horizon_weeks: Demand horizon.
        say: Progress messages.

    Returns:
        The trained model, its validation metrics and registry extras.
    """
    t0 = time.perf_counter()
    if task == "demand":
        dmodel, info = train_demand(
            ctx, ctx.data_end, DemandConfig(horizon=horizon_weeks, seed=settings.seed), say
        )
        extra = {"validation_origin": info["validation_origin"], "horizon_weeks": horizon_weeks}
        return TrainedTask(task, dmodel, info["validation"], extra, time.perf_counter() - t0)
    if task == "recs":
        rmodel, rinfo = train_recs(ctx, ctx.data_end, RecsConfig(seed=settings.seed), say)
        extra = {
            "validation_cutoff": rinfo["validation_cutoff"],
            "excluded_opted_out": rinfo["excluded_opted_out"],
        }
        return TrainedTask(task, rmodel, rinfo["validation"], extra, time.perf_counter() - t0)
    raise ValueError(f"unknown task {task!r}; use demand or recs")


def gate_task(task: str, validation: dict[str, dict[str, Any]], margin: float) -> GateResult:
    """The success gate of one task on its validation window.

    Args:
        task: ``demand`` or ``recs``.
        validation: ``{"model": metrics, baseline: metrics, ...}``.
        margin: Required relative improvement over the best baseline.

    Returns:
        The :class:`shelfops.registry.GateResult`.
    """
    from shelfops.registry import success_gate

    metric, lower_is_better = GATED_METRIC[task]
    return success_gate(validation, metric, lower_is_better, margin)


def registry_metadata(
    trained: TrainedTask, gate: dict[str, Any], window: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """Metadata stored with a registered model (metrics, baselines, gate, lineage).

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
    return {
        "task": "demand" if demand else "recommendations",
        "metrics": trained.validation["model"],
        "baseline_metrics": {k: v for k, v in trained.validation.items() if k != "model"},
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


def run_training(
    settings: Settings,
    horizon_weeks: int = 13,
    demand_margin: float = 0.05,
    recs_margin: float = 0.05,
    tasks: tuple[str, ...] = ("demand", "recs"),
    progress: Progress | None = None,
    register: bool = True,
) -> dict[str, Any]:
    """Train on all ingested data, gate each model on its validation window, register winners.

    The validation window is the last ``horizon_weeks`` (demand) or the last cutoff spacing
    (recommendations) before the data end; the gate compares the model with the best baseline
    there. A rejected model is not registered and the current one stays.

    Args:
        settings: Settings whose home holds ingested clean data.
        horizon_weeks: Demand horizon.
        demand_margin: Required WRMSSE reduction over the best demand baseline.
        recs_margin: Required Recall@10 gain over the best recommendation baseline.
        tasks: Which models to train.
        progress: Progress messages.
        register: Save accepted models into the BentoML store (BENTOML_HOME must be set).

    Returns:
        ``{task: {"gate", "tag", "validation", ...}}`` plus ``report``.
    """
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    ctx = load_context(settings, say)
    cut = ctx.data_end
    window = data_window(ctx)
    out: dict[str, Any] = {"data_window": window}
    report_parts: dict[str, Any] = {"cutoff": str(cut.date()), "data_end": window["end"]}
    recs_model: RecsModel | None = None
    recs_examples: dict[str, list[Any]] = {}
    margins = {"demand": demand_margin, "recs": recs_margin}

    for task in ("demand", "recs"):
        if task not in tasks:
            continue
        trained = train_task(ctx, settings, task, horizon_weeks, say)
        validation = trained.validation
        gate = gate_task(task, validation, margins[task])
        entry: dict[str, Any] = {
            "gate": gate.to_dict(),
            "message": gate.message(),
            "validation": validation,
            "tag": None,
            "seconds": trained.seconds,
        }
        if gate.passed and register:
            meta = registry_metadata(trained, gate.to_dict(), window, settings)
            entry["tag"] = register_task(task, trained.model, meta)
        out[task] = entry
        report_parts["demand" if task == "demand" else "recommendations"] = {
            "model": validation["model"],
            "baselines": {k: v for k, v in validation.items() if k != "model"},
        }
        if task == "recs":
            recs_model = trained.model
            some = _recs_rows(
                ctx, sorted(_buyers_before(purchase_lines(ctx.transactions), cut))[:5], cut
            )
            recs_examples = trained.model.recommend(some, k=10, now=cut)
    out = _clean_json(out)
    report_parts["wall_time_s"] = time.perf_counter() - started
    from shelfops.reports.html import write_report

    path = write_report(
        settings.reports_dir / "training",
        "ShelfOps training (validation window)",
        _clean_json(report_parts),
        recs_model=recs_model,
        recs=recs_examples,
        transactions=ctx.transactions,
        products=ctx.products,
    )
    out["report"] = str(path)
    out["wall_time_s"] = time.perf_counter() - started
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    (settings.reports_dir / "training.json").write_text(json.dumps(out, indent=2))
    return out
