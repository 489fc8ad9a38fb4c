"""``shelfops backtest`` and ``shelfops train``: the modelling commands of the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shelfops.cli.common import console, progress, settings_from
from shelfops.evaluation.metrics import DEMAND_METRICS, RECS_METRICS, format_metric


def _run_with_progress(label: str, fn: Callable[[Callable[[str], None]], Any]) -> Any:
    with progress(label) as bar:
        task = bar.add_task(label, total=None)

        def say(msg: str) -> None:
            bar.update(task, description=f"{label}: {msg}")

        return fn(say)


def _task_table(
    title: str, task: dict[str, Any], keys: list[str], gated: str, improvement: dict[str, float]
) -> Table:
    table = Table(title=title)
    table.add_column("forecaster")
    for k in keys:
        table.add_column(k, justify="right")
    table.add_column(f"model vs it ({gated})", justify="right")
    table.add_row("model", *[format_metric(task["model"].get(k)) for k in keys], "")
    for name, m in task["baselines"].items():
        imp = improvement.get(name)
        table.add_row(
            name,
            *[format_metric(m.get(k)) for k in keys],
            f"{imp:+.1%}" if isinstance(imp, float) else "–",
        )
    return table


def print_backtest(result: dict[str, Any]) -> None:
    """Print the backtest tables (model vs every baseline, relative improvement).

    Args:
        result: The result of :func:`shelfops.evaluation.backtest.run_backtest`.
    """
    d, r = result["demand"], result["recommendations"]
    console.print(
        _task_table(
            f"Demand: {d['products_evaluated']} products, {d['weeks_evaluated']} weeks after "
            f"{result['cutoff']}",
            d,
            list(DEMAND_METRICS),
            "WRMSSE",
            d["relative_improvement_wrmsse"],
        )
    )
    console.print(
        _task_table(
            f"Recommendations: {r['customers_evaluated']} customers, "
            f"catalogue {r['catalogue_size']}",
            r,
            list(RECS_METRICS),
            "Recall@10",
            r["relative_improvement_recall@10"],
        )
    )
    console.print(f"wall time {result['wall_time_s']:.1f} s; report: {result.get('report')}")


def backtest(
    ctx: typer.Context,
    transactions: Annotated[
        Path,
        typer.Option(
            "--transactions",
            exists=True,
            dir_okay=False,
            help="Transactions export (8-column online-retail schema, CSV or XLSX).",
        ),
    ],
    cutoff: Annotated[
        str,
        typer.Option(
            "--cutoff", help="YYYY-MM-DD: train strictly before it (its Monday), evaluate after."
        ),
    ],
    horizon_weeks: Annotated[
        int,
        typer.Option("--horizon-weeks", min=1, max=52, help="Demand forecast horizon in weeks."),
    ] = 13,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", dir_okay=False, help="Write the result JSON to this file."),
    ] = None,
    customers: Annotated[
        Path | None,
        typer.Option(
            "--customers",
            exists=True,
            dir_okay=False,
            help="Optional customers file (consent); derived by policy when absent.",
        ),
    ] = None,
    products: Annotated[
        Path | None,
        typer.Option(
            "--products",
            exists=True,
            dir_okay=False,
            help="Optional products file (categories, discontinue dates).",
        ),
    ] = None,
) -> None:
    """Backtest both models against every baseline on a transactions file."""
    settings = settings_from(ctx)
    from shelfops.evaluation.backtest import run_backtest

    result = _run_with_progress(
        "backtest",
        lambda say: run_backtest(
            transactions,
            cutoff,
            settings,
            horizon_weeks=horizon_weeks,
            customers_path=customers,
            products_path=products,
            progress=say,
        ),
    )
    print_backtest(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        console.print(f"JSON written to {json_out}")


def train(
    ctx: typer.Context,
    horizon_weeks: Annotated[
        int,
        typer.Option("--horizon-weeks", min=1, max=52, help="Demand forecast horizon in weeks."),
    ] = 13,
    demand_margin: Annotated[
        float,
        typer.Option(
            "--demand-margin",
            help="Required WRMSSE reduction over the best demand baseline "
            "on the validation window (0.05 = 5%).",
        ),
    ] = 0.05,
    recs_margin: Annotated[
        float,
        typer.Option(
            "--recs-margin",
            help="Required Recall@10 gain over the best recommendation baseline "
            "on the validation window (0.05 = 5%).",
        ),
    ] = 0.05,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="Model to train: demand or recs (repeatable; default both)."),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", dir_okay=False, help="Write the training result JSON to this file."),
    ] = None,
) -> None:
    """Train on the ingested data, gate on the validation window, register the winners."""
    settings = settings_from(ctx)
    from shelfops.registry import use_bentoml_home

    use_bentoml_home(settings)  # before bentoml is imported
    from shelfops.training.run import run_training

    tasks = tuple(task or ["demand", "recs"])
    bad = [t for t in tasks if t not in ("demand", "recs")]
    if bad:
        raise typer.BadParameter(f"unknown task(s) {bad}; use demand or recs")
    started = time.perf_counter()
    result = _run_with_progress(
        "train",
        lambda say: run_training(
            settings, horizon_weeks, demand_margin, recs_margin, tasks, progress=say
        ),
    )
    rejected = False
    for name in ("demand", "recs"):
        if name in result:
            entry = result[name]
            colour = "green" if entry["gate"]["passed"] else "red"
            console.print(f"[{colour}]{name}: {entry['message']}[/{colour}]")
            if entry["tag"]:
                console.print(f"  registered {entry['tag']}")
            else:
                rejected = True
                console.print("  not registered; the current model stays")
    console.print(f"report: {result['report']} ({time.perf_counter() - started:.1f} s)")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
    if rejected:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``backtest`` and ``train`` to the ``shelfops`` app.

    Args:
        app: The root Typer app.
    """
    app.command("backtest", help="Backtest both models against every baseline on a file.")(backtest)
    app.command("train", help="Train, gate and register the demand and recommendation models.")(
        train
    )
