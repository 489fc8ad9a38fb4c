"""Production training: train each model on all data, gate it, register the winners."""

from __future__ import annotations

import json
import time
from typing import Any

from shelfops.models.demand import DemandConfig
from shelfops.models.recs import RecsConfig, RecsModel, purchase_lines
from shelfops.settings import Settings
from shelfops.training.context import (
    Context,
    Progress,
    clean_json,
    data_window,
    load_context,
    recs_rows,
)
from shelfops.training.demand import train_demand
from shelfops.training.gate import GateResult, gate_task
from shelfops.training.recs import buyers_before, train_recs
from shelfops.training.register import TrainedTask, register_task, registry_metadata


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


def _gate(trained: TrainedTask, margin: float) -> GateResult:
    origin = trained.extra.get("validation_origin") or trained.extra.get("validation_cutoff")
    return gate_task(trained.task, {str(origin): trained.validation}, margin)


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
        gate = _gate(trained, margins[task])
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
            some = recs_rows(
                ctx, sorted(buyers_before(purchase_lines(ctx.transactions), cut))[:5], cut
            )
            recs_examples = trained.model.recommend(some, k=10, now=cut)
    out = clean_json(out)
    report_parts["wall_time_s"] = time.perf_counter() - started
    from shelfops.reports.html import write_report

    path = write_report(
        settings.reports_dir / "training",
        "ShelfOps training (validation window)",
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
