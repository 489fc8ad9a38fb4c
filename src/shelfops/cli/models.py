"""``shelfops backtest`` and ``shelfops train``: the modelling commands of the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shelfops.cli.common import AcceptServedGap, console, fail, progress, settings_from
from shelfops.evaluation.metrics import (
    DEMAND_METRICS,
    DISCOVER_LIST_METRICS,
    DISCOVERY_SLOTS,
    RECS_METRICS,
    format_metric,
    relative_improvement,
)


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


def _origin_table(title: str, task: dict[str, Any], metrics: list[str]) -> Table:
    per = task.get("per_origin") or {}
    table = Table(title=title)
    table.add_column("forecaster")
    for origin in per:
        for m in metrics:
            table.add_column(f"{origin} {m}", justify="right")
    names = ["model", *task["baselines"]]
    for name in names:
        table.add_row(name, *[format_metric(per[o][name].get(m)) for o in per for m in metrics])
    return table


def _discovery_table(r: dict[str, Any]) -> Table:
    """The model with its last E places given to new popular items, against the baselines.

    The last row is the model's discover list (no regulars), a second list beside the main one.
    """
    base = r["baselines"]
    best = max(base, key=lambda n: base[n].get("recall@10") or 0.0)
    pop_new = (base.get("popularity") or {}).get("recall@10_new")
    table = Table(
        title="Discovery slots: the model's last E places given to the most popular items "
        f"new to the customer (mean of origins; best baseline {best})"
    )
    for col in ("E", "recall@10", "ndcg@10", "recall@10_new", "recall@10 vs best", "new vs pop"):
        table.add_column(col, justify="right")
    for e in (0, *DISCOVERY_SLOTS):
        tag = f"_discovery{e}" if e else ""
        m = r["model"]
        rec, new = m.get(f"recall@10{tag}"), m.get(f"recall@10_new{tag}")
        vs = relative_improvement(rec, base[best]["recall@10"], False) if rec else None
        vp = relative_improvement(new, pop_new, False) if new and pop_new else None
        table.add_row(
            str(e),
            format_metric(rec),
            format_metric(m.get(f"ndcg@10{tag}")),
            format_metric(new),
            f"{vs:+.1%}" if vs is not None else "–",
            f"{vp:+.1%}" if vp is not None else "–",
        )
    new = r["model"].get("recall@10_new_discover_list")
    if new is not None:  # a list of its own: its recall is not the main list's
        vp = relative_improvement(new, pop_new, False) if pop_new else None
        table.add_row(
            "discover list",
            format_metric(r["model"].get("recall@10_discover_list")),
            format_metric(r["model"].get("ndcg@10_discover_list")),
            format_metric(new),
            "–",
            f"{vp:+.1%}" if vp is not None else "–",
        )
    return table


def print_backtest(result: dict[str, Any]) -> None:
    """Print the backtest tables: model vs every baseline per origin, then the mean.

    Args:
        result: The result of :func:`shelfops.evaluation.backtest.run_backtest`.
    """
    d, r = result.get("demand"), result.get("recommendations")
    origins = result.get("origins") or [result["cutoff"]]
    if d:
        console.print(_origin_table("Demand per origin", d, ["wrmsse", "wape"]))
    if r:
        console.print(
            _origin_table(
                "Recommendations per origin", r, ["recall@10", "ndcg@10", "recall@10_new"]
            )
        )
    if d:
        console.print(
            _task_table(
                f"Demand, mean of {len(origins)} origins from {result['cutoff']}: "
                f"{d['products_evaluated']:.0f} products per origin, "
                f"horizon {d['horizon_weeks']} weeks",
                d,
                list(DEMAND_METRICS),
                "WRMSSE",
                d["relative_improvement_wrmsse"],
            )
        )
    if r:
        console.print(
            _task_table(
                f"Recommendations, mean of {len(origins)} origins: "
                f"{r['customers_evaluated']:.0f} customers per origin, "
                f"catalogue {r['catalogue_size']}",
                r,
                list(RECS_METRICS),
                "Recall@10",
                r["relative_improvement_recall@10"],
            )
        )
    if r and any(k.endswith(f"discovery{DISCOVERY_SLOTS[0]}") for k in r["model"]):
        console.print(_discovery_table(r))
    if d:
        combination = d.get("combination") or {}
        if combination:
            said = ", ".join(
                f"{seg} -> " + " + ".join(f"{w:.1f} {name}" for name, w in weights.items())
                for seg, weights in combination.items()
            )
            console.print(f"demand per segment (combinations fitted on validation): {said}")
        else:
            console.print("demand: the network alone in every segment (it beat every combination)")
    if r and r.get("served"):
        print_served(r["served"])
    console.print(f"wall time {result['wall_time_s']:.1f} s; report: {result.get('report')}")


def print_served(served: dict[str, Any]) -> None:
    """Print served against offline metrics and what each merchandising rule removed.

    Args:
        served: :meth:`shelfops.evaluation.served.ServedEvaluation.to_dict`.
    """
    table = Table(
        title=f"Served path vs offline model, cutoff {served['cutoff']}: "
        f"{served['customers']:,} customers, {served['personalized']:,} personalized, "
        f"{served['with_personal_items']:,} with personal items"
    )
    table.add_column("metric")
    table.add_column("offline model", justify="right")
    table.add_column("served", justify="right")
    table.add_column("served vs offline", justify="right")
    for metric in ("recall@10", "ndcg@10", "hr@10", *DISCOVER_LIST_METRICS):
        off, srv = served["offline"].get(metric), served["served"].get(metric)
        if off is None or srv is None:  # a model or replay from before the discover list
            continue
        rel = (srv - off) / off if off else 0.0
        table.add_row(metric, format_metric(off), format_metric(srv), f"{rel:+.1%}")
    console.print(table)
    rules = Table(title="Merchandising rules on personal candidates")
    rules.add_column("rule")
    rules.add_column("candidates removed", justify="right")
    rules.add_column("personal lists emptied", justify="right")
    for rule, impact in served["rules"].items():
        rules.add_row(rule, f"{impact['removed']:,}", f"{impact['emptied']:,}")
    if not served["rules"]:
        rules.add_row("(none removed anything)", "0", "0")
    console.print(rules)


_ORIGINS_HELP = "Number of rolling origins (at least 1; 3 or more for a real judgement)."
_STEP_HELP = "Weeks between consecutive origins."


def backtest(
    ctx: typer.Context,
    transactions: Annotated[
        Path | None,
        typer.Option(
            "--transactions",
            exists=True,
            dir_okay=False,
            help="Transactions export (8-column online-retail schema, CSV or XLSX).",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Backtest a public data set instead of a file: completejourney (Dunnhumby).",
        ),
    ] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(
            "--cutoff",
            help="YYYY-MM-DD: train strictly before it (its Monday); it is the first origin. "
            "Default: the latest cutoff whose every window is complete.",
        ),
    ] = None,
    origins: Annotated[int, typer.Option("--origins", min=1, help=_ORIGINS_HELP)] = 3,
    origin_step_weeks: Annotated[
        int, typer.Option("--origin-step-weeks", min=1, help=_STEP_HELP)
    ] = 4,
    households: Annotated[
        int | None,
        typer.Option(
            "--households", min=1, help="With --dataset: only the first N households (a slice)."
        ),
    ] = None,
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
    served: Annotated[
        bool,
        typer.Option(
            "--served",
            help="Also replay every customer evaluated at the latest origin through the "
            "recommendation server as of that day (online store, consent, catalogue, rules, "
            "top-up) and report served Recall/NDCG/HR@10 beside the offline figures.",
        ),
    ] = False,
    models: Annotated[
        str,
        typer.Option(
            "--models",
            help="Which models to train and score: demand, recs or both (one alone is faster "
            "when iterating on it).",
        ),
    ] = "both",
) -> None:
    """Backtest the models against every baseline at rolling origins on a file or data set."""
    settings = settings_from(ctx)
    from shelfops.evaluation.backtest import run_backtest
    from shelfops.evaluation.rolling import OriginPlan

    if (transactions is None) == (dataset is None):
        raise fail("give exactly one of --transactions FILE or --dataset completejourney")
    try:
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
                dataset=dataset,
                plan=OriginPlan(origins, origin_step_weeks),
                households=households,
                served=served,
                models=models,
            ),
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
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
            "on the mean of the validation origins (0.05 = 5%).",
        ),
    ] = 0.05,
    recs_margin: Annotated[
        float,
        typer.Option(
            "--recs-margin",
            help="Required Recall@10 gain over the best recommendation baseline "
            "on the mean of the validation origins (0.05 = 5%).",
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
    origins: Annotated[int, typer.Option("--origins", min=1, help=_ORIGINS_HELP)] = 3,
    origin_step_weeks: Annotated[
        int, typer.Option("--origin-step-weeks", min=1, help=_STEP_HELP)
    ] = 4,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Largest shortfall against the best baseline allowed on any one origin "
            "(0.02 = 2%).",
        ),
    ] = 0.02,
    accept_served_gap: AcceptServedGap = False,
) -> None:
    """Train on the ingested data, gate on rolling validation origins, register the winners."""
    settings = settings_from(ctx)
    from shelfops.registry import use_bentoml_home

    use_bentoml_home(settings)  # before bentoml is imported
    from shelfops.evaluation.rolling import OriginPlan
    from shelfops.training.run import run_training

    tasks = tuple(task or ["demand", "recs"])
    bad = [t for t in tasks if t not in ("demand", "recs")]
    if bad:
        raise typer.BadParameter(f"unknown task(s) {bad}; use demand or recs")
    started = time.perf_counter()
    result = _run_with_progress(
        "train",
        lambda say: run_training(
            settings,
            horizon_weeks,
            demand_margin,
            recs_margin,
            tasks,
            progress=say,
            plan=OriginPlan(origins, origin_step_weeks),
            tolerance=tolerance,
            accept_served_gap=accept_served_gap,
        ),
    )
    rejected = False
    for name in ("demand", "recs"):
        if name in result:
            entry = result[name]
            colour = "green" if entry["gate"]["passed"] else "red"
            console.print(f"[{colour}]{name}: {entry['message']}[/{colour}]")
            if entry.get("served"):
                print_served(entry["served"])
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
    app.command("backtest", help="Backtest both models against every baseline at rolling origins.")(
        backtest
    )
    app.command("train", help="Train, gate and register the demand and recommendation models.")(
        train
    )
