"""Production training: train each model on all data, gate it, register the winners."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pandas as pd

from shelfops.evaluation.rolling import (
    OriginPlan,
    demand_at_origins,
    mean_metrics,
    model_as_of,
    recs_at_origins,
)
from shelfops.evaluation.served import gate_checks
from shelfops.models.demand import DemandConfig
from shelfops.models.recs import RecsConfig, RecsModel, purchase_lines
from shelfops.settings import Settings
from shelfops.training.context import (
    WEEK,
    Context,
    Progress,
    clean_json,
    data_window,
    load_context,
    recs_rows,
)
from shelfops.training.demand import train_demand
from shelfops.training.gate import gate_task
from shelfops.training.recs import buyers_before, train_recs
from shelfops.training.register import TrainedTask, register_task, registry_metadata


def validation_origins(ctx: Context, horizon_weeks: int, plan: OriginPlan) -> list[pd.Timestamp]:
    """The gate's origins: the latest leaves a full horizon before the data end.

    Args:
        ctx: Data context.
        horizon_weeks: Demand horizon (also the recommendation window of the latest origin).
        plan: How many origins, how far apart.

    Returns:
        Mondays, oldest first.
    """
    return plan.origins(ctx.data_end - horizon_weeks * WEEK)


def train_task(
    ctx: Context,
    settings: Settings,
    task: str,
    horizon_weeks: int,
    say: Progress,
    plan: OriginPlan | None = None,
    served: bool = True,
) -> TrainedTask:
    """Train one model before the earliest validation origin and score it at every origin.

    The model that is scored is the model that is registered: it never saw a label on or after
    the earliest validation origin (its own early stopping uses a window before it). The
    recommender is registered with item statistics (counts, not weights) as of the data end,
    as each origin scored it with the statistics of that origin.

    Args:
        ctx: Data context (:func:`load_context`).
        settings: Settings (the seed).
        task: ``demand`` or ``recs``.
        horizon_weeks: Demand horizon.
        say: Progress messages.
        plan: Validation origins (default: 3, four weeks apart).
        served: Replay the recommender's customers of the latest origin through the
            recommendation server (:mod:`shelfops.evaluation.served`, extra ``served``); the
            gate then checks served against offline Recall@10 there.

    Returns:
        The trained model, its validation metrics per origin and registry extras.
    """
    t0 = time.perf_counter()
    origins = validation_origins(ctx, horizon_weeks, plan or OriginPlan())
    first = origins[0]
    extra: dict[str, Any] = {
        "validation_origins": [str(o.date()) for o in origins],
        "trained_before": str(first.date()),
    }
    if task == "demand":
        dmodel, info = train_demand(
            ctx, first, DemandConfig(horizon=horizon_weeks, seed=settings.seed), say
        )
        say(f"demand: scoring {len(origins)} validation origins")
        per, _ = demand_at_origins(ctx, dmodel, origins, ctx.data_end)
        extra |= {
            "early_stopping_origin": info["validation_origin"],
            "segments": info["segments"],
            "fallback": info["fallback"],
            "combination": info["combination"],
            "horizon_weeks": horizon_weeks,
        }
        return TrainedTask(task, dmodel, per, extra, time.perf_counter() - t0)
    if task == "recs":
        rmodel, rinfo = train_recs(ctx, first, RecsConfig(seed=settings.seed), say)
        say(f"recs: scoring {len(origins)} validation origins")
        per, _, sl = recs_at_origins(ctx, rmodel, origins, ctx.data_end)
        lines = purchase_lines(ctx.transactions)
        if served:
            from shelfops.evaluation.served import evaluate_served

            extra["served"] = evaluate_served(
                ctx,
                replace(rmodel, stats=sl.stats),
                sl,
                lines,
                settings,
                offline=per[str(origins[-1].date())]["model"],
                workdir=settings.root,
                progress=say,
            ).to_dict()
        rmodel = model_as_of(rmodel, lines[lines["invoice_date"] < ctx.data_end], ctx, ctx.data_end)
        extra |= {
            "early_stopping_cutoff": rinfo["validation_cutoff"],
            "excluded_opted_out": rinfo["excluded_opted_out"],
        }
        return TrainedTask(task, rmodel, per, extra, time.perf_counter() - t0)
    raise ValueError(f"unknown task {task!r}; use demand or recs")


def run_training(
    settings: Settings,
    horizon_weeks: int = 13,
    demand_margin: float = 0.05,
    recs_margin: float = 0.05,
    tasks: tuple[str, ...] = ("demand", "recs"),
    progress: Progress | None = None,
    register: bool = True,
    plan: OriginPlan | None = None,
    tolerance: float = 0.02,
    accept_served_gap: bool = False,
) -> dict[str, Any]:
    """Train on all ingested data, gate each model on rolling validation origins, register winners.

    Each model is fitted before the earliest validation origin and scored at every origin
    (:func:`train_task`); the gate (:mod:`shelfops.training.gate`) wants the mean to beat the
    best baseline by the margin and no origin to trail it by more than ``tolerance``. A rejected
    model is not registered and the current one stays; an accepted one is registered with the
    metrics it was gated on.

    Args:
        settings: Settings whose home holds ingested clean data.
        horizon_weeks: Demand horizon.
        demand_margin: Required WRMSSE reduction over the best demand baseline.
        recs_margin: Required Recall@10 gain over the best recommendation baseline.
        tasks: Which models to train.
        progress: Progress messages.
        register: Save accepted models into the BentoML store (BENTOML_HOME must be set).
        plan: Validation origins (default: 3, four weeks apart).
        tolerance: Largest shortfall against the best baseline allowed on any origin.
        accept_served_gap: Register a recommender even when its served Recall@10 is more than
            5% below its offline Recall@10 (the acceptance is recorded in registry metadata).

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
        trained = train_task(ctx, settings, task, horizon_weeks, say, plan)
        validation = trained.validation
        checks = gate_checks(trained.extra, accepted=accept_served_gap)
        if checks:
            trained.extra["served_gap_accepted"] = accept_served_gap
        gate = gate_task(task, validation, margins[task], tolerance, checks)
        means = mean_metrics(validation)
        entry: dict[str, Any] = {
            "gate": gate.to_dict(),
            "message": gate.message(),
            "validation": validation,
            "tag": None,
            "seconds": trained.seconds,
            **({"served": trained.extra["served"]} if "served" in trained.extra else {}),
        }
        if gate.passed and register:
            meta = registry_metadata(trained, gate.to_dict(), window, settings)
            entry["tag"] = register_task(task, trained.model, meta)
        out[task] = entry
        report_parts["demand" if task == "demand" else "recommendations"] = {
            "model": means["model"],
            "baselines": {k: v for k, v in means.items() if k != "model"},
            "per_origin": validation,
            **({"served": trained.extra["served"]} if "served" in trained.extra else {}),
        }
        if task == "recs":
            recs_model = trained.model
            some = recs_rows(
                ctx, sorted(buyers_before(purchase_lines(ctx.transactions), cut))[:5], cut
            )
            recs_examples = trained.model.recommend(some, k=10, now=cut)
    out = clean_json(out)
    report_parts["wall_time_s"] = time.perf_counter() - started
    from shelfops.reports.html import write_report

    path = write_report(
        settings.reports_dir / "training",
        "ShelfOps training (validation origins, mean)",
        clean_json(report_parts),
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
