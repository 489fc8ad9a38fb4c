"""``shelfops loadtest run|gate``: Locust headless with realistic traffic, CSV + HTML reports."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shelfops.cli.common import console, fail, progress, settings_from

app = typer.Typer(
    help="Load tests with Locust: traffic profiles and the canary latency gate.",
    no_args_is_help=True,
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="recs, demand, or all (run only).")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Report folder (default: the rollout report folder)."),
]


def _out_dir(ctx: typer.Context, out: Path | None, target: str = "local") -> Path:
    from shelfops.rollout.factory import report_dir
    from shelfops.settings import RolloutSettings

    path = out.resolve() if out else report_dir(settings_from(ctx), RolloutSettings(), target)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _local_endpoint(ctx: typer.Context, model: str) -> str:
    from shelfops.rollout.backends.local import LocalBackend
    from shelfops.settings import RolloutSettings

    seen = LocalBackend(settings_from(ctx), RolloutSettings()).observe(model)
    if not seen.endpoint:
        raise fail(
            f"no local {model} endpoint runs; start one with "
            f"`shelfops rollout deploy --model {model}` or pass --url"
        )
    return seen.endpoint


def _row(stats: dict[str, float]) -> list[str]:
    keys = ("requests", "failures", "error_rate", "p50_ms", "p95_ms", "p99_ms", "rps")
    return [f"{float(stats[k]):.4g}" for k in keys]


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    model: ModelOpt = "all",
    url: Annotated[
        str | None,
        typer.Option(help="Base URL to load (default: the local runtime's stable endpoint)."),
    ] = None,
    profile: Annotated[str, typer.Option(help="smoke, gate, soak or spike.")] = "smoke",
    users: Annotated[int | None, typer.Option(help="Users (default: the profile's).")] = None,
    duration: Annotated[
        float | None, typer.Option(help="Seconds (default: the profile's).")
    ] = None,
    out: OutOpt = None,
) -> None:
    """Send realistic traffic (ids from the clean tables), write CSV + HTML reports.

    Exits 1 when the run breaches the absolute gate thresholds (SHELFOPS_ROLLOUT_MAX_P95_MS,
    _MAX_P99_MS, _MAX_ERROR_RATE, _MIN_RPS).
    """
    from shelfops.rollout.factory import traffic_env
    from shelfops.rollout.gate import (
        PROFILES,
        USER_CLASSES,
        evaluate,
        find_locustfile,
        start_locust,
    )
    from shelfops.settings import RolloutSettings

    if profile not in PROFILES:
        raise fail(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    models = list(USER_CLASSES) if model == "all" else [model]
    if any(m not in USER_CLASSES for m in models):
        raise fail(f"unknown model {model!r}; choose recs, demand or all")
    if url and len(models) > 1:
        raise fail("--url loads one model: pass --model recs or --model demand with it")
    chosen = PROFILES[profile]
    n_users = users or chosen.users
    seconds = duration or chosen.duration_s
    folder = _out_dir(ctx, out)
    env = traffic_env(settings_from(ctx), folder)
    if not env:
        console.print("[yellow]no clean tables: Locust uses synthetic ids[/]")
    env.update(
        {
            "SHELFOPS_LOADTEST_PROFILE": profile,
            "SHELFOPS_LOADTEST_USERS": str(n_users),
            "SHELFOPS_LOADTEST_DURATION_S": str(seconds),
        }
    )
    host = url
    if host is None:
        for m in models:
            env[f"SHELFOPS_LOADTEST_{m.upper()}_URL"] = _local_endpoint(ctx, m)
        # One model: --host; both: each user class reads its own URL from the environment.
        host = env[f"SHELFOPS_LOADTEST_{models[0].upper()}_URL"] if len(models) == 1 else None
    prefix = folder / f"run-{profile}-{model}-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        locustfile = find_locustfile()
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    label = f"Locust {profile}: {n_users} users, {seconds:.0f} s"
    with progress(label) as bar:
        bar.add_task(label, total=None)
        run = start_locust(
            locustfile=locustfile,
            host=host or None,
            user_classes=[USER_CLASSES[m] for m in models],
            users=n_users,
            duration_s=seconds,
            prefix=prefix,
            env=env,
        )
        try:
            stats = run.wait(seconds + 60)
        except (TimeoutError, FileNotFoundError, ValueError) as exc:
            raise fail(f"{exc}; Locust log: {run.log}") from exc
    table = Table(title=f"{profile} on {', '.join(models)}")
    for key in ("requests", "failures", "error_rate", "p50_ms", "p95_ms", "p99_ms", "rps"):
        table.add_column(key, justify="right")
    table.add_row(*_row(stats.to_dict()))
    console.print(table)
    console.print(f"CSV: {prefix}_stats.csv\nHTML: {prefix}.html")
    verdict = evaluate(stats, None, RolloutSettings())
    colour = "green" if verdict.passed else "red"
    console.print(f"[bold {colour}]{verdict.summary()}")
    if not verdict.passed:
        raise typer.Exit(1)


@app.command("gate")
def gate_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="recs or demand.")],
    canary_url: Annotated[
        str | None,
        typer.Option(help="The canary's own URL (KServe: the latest- URL; default: local canary)."),
    ] = None,
    stable_url: Annotated[
        str | None,
        typer.Option(help="The stable's own URL (KServe: the prev- URL; default: local stable)."),
    ] = None,
    out: OutOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Run the canary gate (thresholds from SHELFOPS_ROLLOUT_*); exit 1 on a breach."""
    from shelfops.rollout.backends.local import LocalBackend
    from shelfops.rollout.factory import traffic_env
    from shelfops.rollout.gate import USER_CLASSES, LocustGate
    from shelfops.settings import RolloutSettings

    if model not in USER_CLASSES:
        raise fail(f"unknown model {model!r}; choose recs or demand")
    settings = settings_from(ctx)
    config = RolloutSettings()
    if canary_url is None:
        seen = LocalBackend(settings, config).observe(model)
        version = seen.canary_version or seen.stable_version
        canary_url = seen.url_of(version)
        if stable_url is None and seen.canary_version:
            stable_url = seen.url_of(seen.stable_version)
        if canary_url is None:
            raise fail(f"no local {model} revision runs; pass --canary-url")
    folder = _out_dir(ctx, out)
    gate = LocustGate(config, folder, env=traffic_env(settings, folder))
    label = f"gate {model}: {config.gate_users} users, {config.gate_duration_s:.0f} s"
    try:
        if as_json:  # stdout carries the JSON only
            verdict = gate.run(model, canary_url, stable_url, label=f"gate-{model}")
        else:
            with progress(label) as bar:
                bar.add_task(label, total=None)
                verdict = gate.run(model, canary_url, stable_url, label=f"gate-{model}")
    except (TimeoutError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(verdict.to_dict()))
        raise typer.Exit(0 if verdict.passed else 1)
    else:
        table = Table(title=f"gate on {canary_url}")
        for col in ("check", "value", "limit", "ok"):
            table.add_column(col)
        for c in verdict.checks:
            ok = "[green]yes" if c.passed else "[red]NO"
            table.add_row(c.name, f"{c.value:.4g}", f"{c.limit:.4g}", ok)
        console.print(table)
        console.print(f"reports: {verdict.reports.get('canary_html')}")
    colour = "green" if verdict.passed else "red"
    console.print(f"[bold {colour}]{verdict.summary()}")
    if not verdict.passed:
        raise typer.Exit(1)
