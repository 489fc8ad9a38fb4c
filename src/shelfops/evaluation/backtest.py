"""The backtest: the evaluation protocol of DESIGN.md, model beside every baseline, per origin.

``run_backtest`` imports a transactions file (or a public data set) with the production importer
into a backtest home, builds the feature tables and the Feast repo there, trains both models
strictly before the cutoff with :mod:`shelfops.training` (early stopping on windows that also end
before it), scores them at several rolling origins from the cutoff on
(:mod:`shelfops.evaluation.rolling`) beside every baseline and returns a JSON-able result with
each origin and the mean.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.evaluation.metrics import relative_improvement
from shelfops.evaluation.rolling import (
    OriginPlan,
    demand_at_origins,
    mean_metrics,
    recs_at_origins,
)
from shelfops.models.baselines import DEMAND_BASELINES
from shelfops.models.demand import DemandConfig
from shelfops.models.recs import RecsConfig, RecsModel, TrainingSlice, purchase_lines
from shelfops.settings import Settings
from shelfops.training.context import (
    WEEK,
    Context,
    Progress,
    clean_json,
    load_context,
    monday,
)
from shelfops.training.demand import train_demand
from shelfops.training.recs import train_recs

#: What ``run_backtest(models=...)`` accepts: one model (to iterate on it alone) or both.
BACKTEST_MODELS: tuple[str, ...] = ("demand", "recs", "both")


def _table(scores: dict[str, dict[str, Any]], key: str, lower: bool) -> dict[str, Any]:
    model = float(scores["model"][key])
    out = {}
    for name, s in scores.items():
        if name != "model":
            out[name] = relative_improvement(model, float(s[key]), lower)
    return out


def _per_origin(per: dict[str, dict[str, dict[str, Any]]], key: str, lower: bool) -> dict:
    return {o: _table(scores, key, lower) for o, scores in per.items()}


def _prepare_home(
    settings: Settings,
    dataset: str | None,
    transactions_path: Path | None,
    cutoff: str | pd.Timestamp | None,
    customers_path: Path | None,
    products_path: Path | None,
    households: int | None,
    say: Progress,
) -> tuple[Settings, str]:
    """Import the data into a backtest home of its own; returns its settings and the source."""
    from shelfops.data.ingest import ingest
    from shelfops.settings import QualityThresholds

    tag = str(monday(cutoff).date()) if cutoff is not None else "auto"
    if dataset is not None:
        if dataset != "completejourney":
            raise ValueError(f"unknown data set {dataset!r}; the one available is completejourney")
        from shelfops.data.completejourney import import_completejourney

        part = "all" if households is None else f"{households}h"
        bt = settings.model_copy(
            update={"home": settings.root / "backtests" / f"completejourney-{part}-{tag}"}
        )
        import_completejourney(
            bt.root, policy=settings.consent_policy, households=households, progress=say
        )
        return bt, "completejourney"
    if transactions_path is None:
        raise ValueError("give a transactions file or a data set (--dataset completejourney)")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", transactions_path.stem)
    # Its own registry too: a cluster's SHELFOPS_FEAST_REGISTRY is the shared one.
    bt = settings.model_copy(
        update={"home": settings.root / "backtests" / f"{stem}-{tag}", "feast_registry": None}
    )
    say(f"ingesting {transactions_path.name}")
    ingest(
        transactions_path,
        bt.root,
        customers_path=customers_path,
        products_path=products_path,
        policy=settings.consent_policy,
        thresholds=QualityThresholds(max_staleness_days=None),
        progress=say,
    )
    return bt, str(transactions_path)


def _demand_part(
    ctx: Context,
    cut: pd.Timestamp,
    origins: list[pd.Timestamp],
    dcfg: DemandConfig,
    weeks: dict[str, int],
    say: Progress,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train the demand model before ``cut`` and score it at every origin beside the baselines."""
    say("training the demand model")
    t0 = time.perf_counter()
    dmodel, dinfo = train_demand(ctx, cut, dcfg, say)
    ctx.timings["demand_train_s"] = time.perf_counter() - t0
    say(f"demand: scoring {len(origins)} origins")
    t0 = time.perf_counter()
    dper, forecasts = demand_at_origins(ctx, dmodel, origins, ctx.data_end)
    ctx.timings["demand_eval_s"] = time.perf_counter() - t0
    dmean = mean_metrics(dper)
    return {
        "model": dmean["model"],
        "baselines": {k: dmean[k] for k in DEMAND_BASELINES},
        "relative_improvement_wrmsse": _table(dmean, "wrmsse", True),
        "per_origin": dper,
        "relative_improvement_wrmsse_per_origin": _per_origin(dper, "wrmsse", True),
        "products_evaluated": dmean["model"]["products"],
        "horizon_weeks": dcfg.horizon,
        "weeks_evaluated": weeks,
        "early_stopping": dinfo["validation"],
        "early_stopping_origin": dinfo["validation_origin"],
        "segments": dinfo["segments"],
        "fallback": dinfo["fallback"],
        "combination": dinfo["combination"],
        "training_rows": dinfo["training_rows"],
        "wall_time_s": ctx.timings["demand_train_s"] + ctx.timings["demand_eval_s"],
    }, forecasts


def _recs_part(
    ctx: Context,
    cut: pd.Timestamp,
    origins: list[pd.Timestamp],
    rcfg: RecsConfig,
    say: Progress,
) -> tuple[dict[str, Any], RecsModel, dict[str, list[Any]], TrainingSlice]:
    """Train the recommender before ``cut`` and score it at every origin beside the baselines."""
    say("training the recommender")
    t0 = time.perf_counter()
    rmodel, rinfo = train_recs(ctx, cut, rcfg, say)
    ctx.timings["recs_train_s"] = time.perf_counter() - t0
    say(f"recs: scoring {len(origins)} origins")
    t0 = time.perf_counter()
    rper, recs, sl = recs_at_origins(ctx, rmodel, origins, ctx.data_end + WEEK * 1000)
    ctx.timings["recs_eval_s"] = time.perf_counter() - t0
    rmean = mean_metrics(rper)
    return (
        {
            "model": rmean["model"],
            "baselines": {k: v for k, v in rmean.items() if k != "model"},
            "relative_improvement_recall@10": _table(rmean, "recall@10", False),
            "per_origin": rper,
            "relative_improvement_recall@10_per_origin": _per_origin(rper, "recall@10", False),
            "customers_evaluated": rmean["model"]["customers"],
            "catalogue_size": int(rmodel.stats.recommendable.sum()),
            "early_stopping": rinfo["validation"],
            "early_stopping_cutoff": rinfo["validation_cutoff"],
            "training_customers": rinfo["training_customers"],
            "excluded_opted_out": rinfo["excluded_opted_out"],
            "wall_time_s": ctx.timings["recs_train_s"] + ctx.timings["recs_eval_s"],
        },
        rmodel,
        recs,
        sl,
    )


def run_backtest(
    transactions_path: Path | None,
    cutoff: str | pd.Timestamp | None,
    settings: Settings,
    horizon_weeks: int = 13,
    customers_path: Path | None = None,
    products_path: Path | None = None,
    progress: Progress | None = None,
    demand_config: DemandConfig | None = None,
    recs_config: RecsConfig | None = None,
    report: bool = True,
    dataset: str | None = None,
    plan: OriginPlan | None = None,
    households: int | None = None,
    served: bool = False,
    models: str = "both",
) -> dict[str, Any]:
    """Run the whole rolling-origin backtest and return the JSON-able result.

    Both models are trained strictly before the cutoff (the earliest origin) and scored at
    ``plan.count`` origins ``plan.step_weeks`` apart from it, each over ``horizon_weeks`` weeks
    (fewer at the end of the data), beside every baseline; the result has each origin and the
    mean.

    Args:
        transactions_path: Transactions export (8-column schema, CSV or XLSX); None with a data
            set.
        cutoff: First day not used for training (moved back to its Monday); None: the latest
            cutoff whose every window is complete.
        settings: Settings; the run lives under ``<home>/backtests/<source>-<cutoff>``.
        horizon_weeks: Demand horizon.
        customers_path: Optional customers file.
        products_path: Optional products file.
        progress: Progress messages.
        demand_config: Demand hyper-parameters (horizon is overridden).
        recs_config: Recommender hyper-parameters.
        report: Write the HTML report.
        dataset: A public data set instead of a file (``completejourney``).
        plan: Origins (default: 3, four weeks apart).
        households: With a data set, only its first N households.
        served: Also replay the customers of the latest origin through the recommendation server
            with the state as of that origin (:mod:`shelfops.evaluation.served`) and report
            served metrics beside the model's offline ones there (needs the recommender).
        models: Which models to train and score: ``demand``, ``recs`` or ``both``.

    Returns:
        ``{"cutoff", "origins", "demand": {...}, "recommendations": {...}, "wall_time_s", ...}``
        (only the entries of the models asked for).

    Raises:
        ValueError: On an unknown ``models``, ``served`` without the recommender, or origins
            beyond the data.
    """
    if models not in BACKTEST_MODELS:
        raise ValueError(f"unknown models {models!r}; use one of {', '.join(BACKTEST_MODELS)}")
    if served and models == "demand":
        raise ValueError("--served replays the recommender: use --models recs or both")
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    plan = plan or OriginPlan()
    t0 = time.perf_counter()
    bt, source = _prepare_home(
        settings,
        dataset,
        transactions_path,
        cutoff,
        customers_path,
        products_path,
        households,
        say,
    )
    t_ingest = time.perf_counter() - t0
    ctx = load_context(bt, say)
    ctx.timings["ingest_s"] = t_ingest
    if cutoff is None:
        cut = ctx.data_end - (horizon_weeks + plan.span_weeks()) * WEEK
    else:
        cut = monday(cutoff)
    origins = plan.origins(cut + plan.span_weeks() * WEEK)
    if origins[-1] >= ctx.data_end:
        raise ValueError(
            f"cutoff {cut.date()} with {plan.count} origins {plan.step_weeks} weeks apart leaves "
            f"no complete week after the last origin {origins[-1].date()} (data ends "
            f"{ctx.data_end.date()}); use an earlier --cutoff or fewer --origins"
        )
    weeks = {str(o.date()): int(min(horizon_weeks, (ctx.data_end - o) / WEEK)) for o in origins}
    result: dict[str, Any] = {
        "transactions": source,
        "cutoff": str(cut.date()),
        "origins": [str(o.date()) for o in origins],
        "origin_step_weeks": plan.step_weeks,
        "data_end": str((ctx.data_end - pd.Timedelta(days=1)).date()),
        "seed": settings.seed,
        "models": models,
    }
    forecasts: pd.DataFrame | None = None
    if models in ("demand", "both"):
        dcfg = demand_config or DemandConfig(seed=settings.seed)
        dcfg.horizon = horizon_weeks
        result["demand"], forecasts = _demand_part(ctx, cut, origins, dcfg, weeks, say)
    rmodel: RecsModel | None = None
    recs: dict[str, list[Any]] | None = None
    sl: TrainingSlice | None = None
    if models in ("recs", "both"):
        rcfg = recs_config or RecsConfig(seed=settings.seed)
        result["recommendations"], rmodel, recs, sl = _recs_part(ctx, cut, origins, rcfg, say)
    result["timings_s"] = dict(ctx.timings)
    result["wall_time_s"] = time.perf_counter() - started
    result["home"] = str(bt.root)
    if served and rmodel is not None and sl is not None:
        from shelfops.evaluation.served import evaluate_served

        t0 = time.perf_counter()
        replay = evaluate_served(
            ctx,
            replace(rmodel, stats=sl.stats),
            sl,
            purchase_lines(ctx.transactions),
            settings,  # the user's home: its rules in force
            offline=result["recommendations"]["per_origin"][str(origins[-1].date())]["model"],
            workdir=bt.root,
            progress=say,
        )
        result["recommendations"]["served"] = replay.to_dict()
        result["timings_s"]["recs_served_s"] = time.perf_counter() - t0
        result["wall_time_s"] = time.perf_counter() - started
    result = clean_json(result)
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
            rows=sl.rows if sl is not None else None,
        )
        result["report"] = str(path)
        result["wall_time_s"] = time.perf_counter() - started
    (bt.reports_dir).mkdir(parents=True, exist_ok=True)
    (bt.reports_dir / "backtest.json").write_text(json.dumps(result, indent=2))
    return result
