"""``shelfops pipeline``: run the Kubeflow training pipeline locally, compile it, submit it."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shelfops.cli.common import AcceptServedGap, console, fail, progress, settings_from

app = typer.Typer(help="The Kubeflow training pipeline: run locally, compile, submit.")

Model = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="SHELFOPS_RETRAIN_MODEL",
        help="Models to train: all, demand or recs (env SHELFOPS_RETRAIN_MODEL).",
    ),
]
Transactions = Annotated[
    str,
    typer.Option(
        "--transactions", help="Transactions export (default: the generated sample in the home)."
    ),
]
HorizonWeeks = Annotated[
    int, typer.Option("--horizon-weeks", min=1, max=52, help="Demand forecast horizon in weeks.")
]
DemandMargin = Annotated[
    float,
    typer.Option(
        "--demand-margin", help="Required WRMSSE reduction over the best demand baseline (0.05=5%)."
    ),
]
RecsMargin = Annotated[
    float,
    typer.Option(
        "--recs-margin", help="Required Recall@10 gain over the best recommendation baseline."
    ),
]
DeployCanary = Annotated[
    bool,
    typer.Option(
        "--deploy-canary/--no-deploy-canary",
        help="Canary-deploy the new Bentos through the rollout engine (not wired yet).",
    ),
]
Image = Annotated[
    str | None,
    typer.Option(
        "--image",
        envvar="SHELFOPS_PIPELINE_IMAGE",
        help="Container image of every component (default shelfops:dev; env "
        "SHELFOPS_PIPELINE_IMAGE).",
    ),
]


def pipeline_arguments(
    model: str,
    transactions: str,
    horizon_weeks: int,
    demand_margin: float,
    recs_margin: float,
    deploy_canary: bool,
    **extra: Any,
) -> dict[str, Any]:
    """Pipeline arguments from CLI options (validated).

    Args:
        model: all, demand or recs.
        transactions: Transactions export ('' for the generated sample).
        horizon_weeks: Demand horizon.
        demand_margin: Demand gate margin.
        recs_margin: Recommendation gate margin.
        deploy_canary: Canary-deploy the Bentos.
        **extra: Further pipeline arguments.

    Returns:
        The arguments.

    Raises:
        typer.BadParameter: an unknown model selection.
    """
    from shelfops.orchestration.steps import SELECTIONS

    if model not in SELECTIONS:
        raise typer.BadParameter(f"--model must be one of {', '.join(SELECTIONS)}, not {model!r}")
    return {
        "model": model,
        "transactions": transactions,
        "horizon_weeks": horizon_weeks,
        "demand_margin": demand_margin,
        "recs_margin": recs_margin,
        "deploy_canary": deploy_canary,
        **extra,
    }


def _key_outputs(step: Any) -> str:
    shown = {k: v for k, v in step.outputs.items() if k != "reason" and v not in ("", None)}
    for name, art in step.artifacts.items():
        if name == "metrics":  # every metric of every forecaster: too long for a table cell
            continue
        meta = art["metadata"]
        shown.update({k: v for k, v in meta.items() if k not in ("home", "display_name")})
    text = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
    return text if len(text) < 160 else text[:157] + "..."


def _short(value: Any) -> str:
    # Artifact metadata stores every number as a double: show whole numbers as integers.
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:.4g}"
    return str(value)


def print_summary(summary: Any) -> None:
    """Print the per-step table, where artifacts are, and the verdict.

    Args:
        summary: A :class:`shelfops.orchestration.local.RunSummary`.
    """
    table = Table(title="shelfops-training (kfp.local)")
    table.add_column("step")
    table.add_column("status")
    table.add_column("wall s", justify="right")
    table.add_column("compute s", justify="right")
    table.add_column("key outputs", overflow="fold")
    colours = {"succeeded": "green", "failed": "red", "skipped": "dim"}
    for s in summary.steps:
        colour = colours.get(s.status, "white")
        ran = s.status != "skipped"
        table.add_row(
            s.name,
            f"[{colour}]{s.status}[/{colour}]",
            f"{s.wall_s:.1f}" if ran else "",
            f"{s.compute_s:.1f}" if ran else "",
            _key_outputs(s) if ran else "",
        )
    console.print(table)
    console.print(
        f"wall {summary.wall_s:.1f} s, step compute {summary.compute_s:.1f} s, "
        f"orchestration overhead {summary.overhead_s:.1f} s"
    )
    console.print("artifacts:")
    for s in summary.steps:
        for name, art in s.artifacts.items():
            console.print(f"  {s.name}/{name}: {art['uri']}", soft_wrap=True)
    console.print(f"log: {summary.log}", soft_wrap=True)


@contextlib.contextmanager
def _console_on_stdout() -> Iterator[None]:
    """Keep the console on today's stdout while ``run_local`` sends kfp's output to the run log.

    Rich looks ``sys.stdout`` up on every write unless a file is set.
    """
    previous = console._file
    console.file = sys.stdout
    try:
        yield
    finally:
        console._file = previous


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    local: Annotated[
        bool,
        typer.Option(
            "--local/--no-local",
            help="Run on this machine with kfp.local (for a cluster use `pipeline submit`).",
        ),
    ] = True,
    model: Model = "all",
    transactions: Transactions = "",
    customers: Annotated[
        str, typer.Option("--customers", help="Customers file (default: generated or derived).")
    ] = "",
    products: Annotated[
        str, typer.Option("--products", help="Products file (default: generated or derived).")
    ] = "",
    promotions: Annotated[
        str,
        typer.Option(
            "--promotions",
            help="Weekly planned promotions file (displays, mailers; default: none).",
        ),
    ] = "",
    as_of: Annotated[
        str,
        typer.Option("--as-of", help="Measure data staleness against YYYY-MM-DD (default: now)."),
    ] = "",
    horizon_weeks: HorizonWeeks = 13,
    demand_margin: DemandMargin = 0.05,
    recs_margin: RecsMargin = 0.05,
    deploy_canary: DeployCanary = False,
    accept_served_gap: AcceptServedGap = False,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", dir_okay=False, help="Write the run summary JSON to this file."),
    ] = None,
) -> None:
    """Run the training pipeline end to end and print a per-step summary."""
    if not local:
        raise fail(
            "only --local runs here; use `shelfops pipeline submit --host URL` for a cluster"
        )
    settings = settings_from(ctx)
    from shelfops.orchestration.local import run_local

    arguments = pipeline_arguments(
        model,
        transactions,
        horizon_weeks,
        demand_margin,
        recs_margin,
        deploy_canary,
        accept_served_gap=accept_served_gap,
        as_of=as_of,
        customers=customers,
        products=products,
        promotions=promotions,
    )
    with _console_on_stdout(), progress("pipeline") as bar:
        task = bar.add_task("pipeline: starting", total=None)

        def on_step(name: str, state: str) -> None:
            if state == "running":
                bar.update(task, description=f"pipeline: {name}")
            else:
                bar.console.print(f"  {name}: {state}")

        summary = run_local(settings, arguments, on_step)
    print_summary(summary)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary.to_dict(), indent=2, default=str))
    if summary.status.endswith("gate_failed"):
        raise fail(
            f"pipeline stopped, {summary.status.replace('_', ' ')}: {summary.reason}\n"
            "Nothing was registered. Fix the cause and re-run `shelfops pipeline run --local`.",
            code=2,
        )
    if summary.status != "succeeded":
        raise fail(f"pipeline failed: {summary.reason}; fix it and re-run", code=1)
    console.print(
        f"[bold green]pipeline succeeded[/] (summary: {settings.reports_dir / 'pipeline_run.json'})"
    )


@app.command("compile")
def compile_cmd(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", dir_okay=False, help="YAML to write (default: pipelines/compiled/...)."
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Component image (default shelfops:dev, the committed one)."),
    ] = None,
) -> None:
    """Compile the training pipeline to a KFP v2 YAML package."""
    from shelfops.orchestration.cluster import compile_pipeline, default_compiled_path

    path = compile_pipeline(out or default_compiled_path(), image)
    console.print(f"[green]compiled[/] {path}")


@app.command("submit")
def submit_cmd(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", envvar="KFP_HOST", help="Kubeflow Pipelines API URL.")
    ],
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            help="Cron for a recurring run, e.g. '23 3 * * 1' (weekly, Mondays 03:23 UTC); "
            "without it one run is created.",
        ),
    ] = None,
    image: Image = None,
    model: Model = "all",
    transactions: Transactions = "",
    horizon_weeks: HorizonWeeks = 13,
    demand_margin: DemandMargin = 0.05,
    recs_margin: RecsMargin = 0.05,
    deploy_canary: DeployCanary = False,
    accept_served_gap: AcceptServedGap = False,
    pipeline_home: Annotated[
        str,
        typer.Option(
            "--pipeline-home",
            help="ShelfOps home inside the components (a mounted volume; default: the image's "
            "SHELFOPS_HOME).",
        ),
    ] = "",
    experiment: Annotated[str, typer.Option(help="Kubeflow experiment name.")] = "shelfops",
) -> None:
    """Submit the training pipeline to Kubeflow Pipelines (one run or a recurring run)."""
    settings_from(ctx)
    from shelfops.orchestration.cluster import cron6, submit

    arguments = pipeline_arguments(
        model,
        transactions,
        horizon_weeks,
        demand_margin,
        recs_margin,
        deploy_canary,
        accept_served_gap=accept_served_gap,
        home=pipeline_home,
    )
    if schedule is not None:
        try:
            cron6(schedule)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    try:
        created = submit(host, arguments, image, schedule, experiment)
    except Exception as exc:
        raise fail(
            f"could not submit to {host}: {exc}\nCheck that the Kubeflow Pipelines API is "
            "reachable (e.g. `kubectl port-forward svc/ml-pipeline-ui 8080:80`) and the URL."
        ) from exc
    kind = "recurring run" if created["kind"] == "recurring_run" else "run"
    console.print(f"[green]created {kind}[/] {created['name']} (id {created['id']}) on {host}")
