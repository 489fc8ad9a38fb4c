"""The backtest: the evaluation protocol of DESIGN.md, model beside every baseline.

``run_backtest`` ingests a transactions file with the production importer into a backtest home,
builds the feature tables and the Feast repo there, trains both models strictly before the cutoff
with :mod:`shelfops.training` (early stopping and validation windows that also end before the
cutoff), evaluates after it beside every baseline and returns a JSON-able result.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.evaluation.metrics import relative_improvement
from shelfops.evaluation.scoring import eval_products, score_demand, score_recs
from shelfops.models.baselines import DEMAND_BASELINES, demand_baselines
from shelfops.models.demand import DemandConfig, DemandModel
from shelfops.models.recs import RecsConfig, RecsModel, TrainingSlice, purchase_lines
from shelfops.settings import Settings
from shelfops.training.context import (
    WEEK,
    Context,
    Progress,
    clean_json,
    demand_rows,
    load_context,
    monday,
)
from shelfops.training.demand import train_demand
from shelfops.training.recs import recs_slice, train_recs


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
    codes = eval_products(ctx.panel, cutoff)
    rows = demand_rows(ctx, [cutoff], {cutoff: codes})
    fc = model.predict(rows)
    scores = score_demand(
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
    sl = recs_slice(ctx, lines, model.stats.items, cutoff, ctx.data_end + WEEK * 1000, model.config)
    sl.stats = model.stats
    scores, recs = score_recs(lines, sl, model)
    return scores, recs, sl


def _table(scores: dict[str, dict[str, Any]], key: str, lower: bool) -> dict[str, Any]:
    model = float(scores["model"][key])
    out = {}
    for name, s in scores.items():
        if name != "model":
            out[name] = relative_improvement(model, float(s[key]), lower)
    return out


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

    weeks_after = int(min(horizon_weeks, (ctx.data_end - cut) / WEEK))
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
            rows=sl.rows,
        )
        result["report"] = str(path)
        result["wall_time_s"] = time.perf_counter() - started
    (bt.reports_dir).mkdir(parents=True, exist_ok=True)
    (bt.reports_dir / "backtest.json").write_text(json.dumps(result, indent=2))
    return result
