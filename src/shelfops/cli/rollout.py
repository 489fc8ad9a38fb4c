"""``shelfops rollout``: canary deploy, status, promote, rollback, history, stop (SRE commands)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from shelfops.cli.common import console, fail, progress, settings_from

if TYPE_CHECKING:
    from shelfops.rollout.engine import RolloutEngine, RolloutResult

app = typer.Typer(
    help="Canary rollouts of model versions: deploy, status, promote, rollback, history, stop.",
    no_args_is_help=True,
)

MODELS = ("recs", "demand")
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model to act on: recs or demand.")]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="Where it runs: local (bentoml serve processes) or kserve (InferenceService). "
        "Default: local on the local profile, kserve on the cluster profile.",
    ),
]


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise fail(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")


@contextmanager
def _engine(
    ctx: typer.Context, target: str | None, label: str, revision_env: dict[str, str] | None = None
) -> Iterator[RolloutEngine]:
    """Build the engine and show each transition under a spinner; turn errors into advice."""
    from shelfops.rollout.backends.base import BackendError
    from shelfops.rollout.engine import RolloutError
    from shelfops.rollout.factory import build_engine, default_target
    from shelfops.rollout.state import RolloutLocked

    settings = settings_from(ctx)
    chosen = target or default_target(settings)
    if chosen not in ("local", "kserve"):
        raise fail(f"unknown target {chosen!r}; choose local or kserve")
    with progress(label) as bar:
        task = bar.add_task(label, total=None)

        def say(msg: str) -> None:
            bar.console.print(f"  [dim]{time.strftime('%H:%M:%S')}[/] {msg}")
            bar.update(task, description=f"{label}: {msg}")

        try:
            yield build_engine(settings, chosen, revision_env=revision_env, on_event=say)
        except (RolloutError, RolloutLocked, BackendError, FileNotFoundError) as exc:
            raise fail(str(exc)) from exc


def _print_result(result: RolloutResult) -> None:
    for verdict in result.verdicts:
        table = Table(title=f"gate ({verdict.duration_s:.1f} s)")
        for col in ("check", "value", "limit", "ok"):
            table.add_column(col)
        for c in verdict.checks:
            table.add_row(
                c.name, f"{c.value:.4g}", f"{c.limit:.4g}", "[green]yes" if c.passed else "[red]NO"
            )
        console.print(table)
        if verdict.reports.get("canary_html"):
            console.print(f"  Locust report: {verdict.reports['canary_html']}")
    colour = "green" if result.ok else "red"
    console.print(
        f"[bold {colour}]{result.model}: {result.outcome}[/] in {result.seconds:.1f} s"
        + (f" ({result.reason})" if result.reason else "")
    )


def _print_endpoint(engine: RolloutEngine, model: str) -> None:
    seen = engine.backend.observe(model)
    if seen.endpoint:
        console.print(f"  {model} endpoint: {seen.endpoint}  (serving {seen.stable_version})")


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--canary-env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


@app.command("deploy")
def deploy_cmd(
    ctx: typer.Context,
    model: ModelOpt,
    version: Annotated[
        str,
        typer.Option(
            help="Version to roll out: a model-store version or `latest` (local), an image tag "
            "(kserve)."
        ),
    ] = "latest",
    target: TargetOpt = None,
    canary_env: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE environment for the canary process (local fault drills, e.g. "
            "SHELFOPS_SERVING_INJECT_LATENCY_MS=300). Repeatable."
        ),
    ] = None,
) -> None:
    """Roll a version out as a canary (10 -> 50 -> 100 %), gate each step, promote or roll back.

    Running it again after an interruption continues the recorded rollout.
    """
    _check_model(model)
    env = _parse_env(canary_env or [])
    with _engine(ctx, target, f"rollout {model}", revision_env=env) as engine:
        result = engine.deploy(model, version)
    _print_result(result)
    _print_endpoint(engine, model)
    if not result.ok:
        raise typer.Exit(1)


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    target: TargetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each model's phase, versions, canary share, revisions and endpoint."""
    models = [model] if model else list(MODELS)
    for m in models:
        _check_model(m)
    from shelfops.rollout.backends.base import BackendError
    from shelfops.rollout.factory import build_backend, default_target
    from shelfops.rollout.state import StateStore
    from shelfops.settings import RolloutSettings

    settings = settings_from(ctx)
    chosen = target or default_target(settings)
    store = StateStore(settings.root / "rollout")
    out: dict[str, dict[str, Any]] = {}
    try:
        backend = build_backend(settings, RolloutSettings(), chosen)
        for m in models:
            state = store.load(chosen, m)
            out[m] = {
                "state": state.to_dict() if state else None,
                "backend": backend.observe(m).to_dict(),
            }
    except (BackendError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if as_json:
        console.print_json(json.dumps(out))
        return
    table = Table(title=f"rollouts on {chosen}")
    for col in ("model", "phase", "stable", "canary", "canary %", "revisions", "endpoint"):
        table.add_column(col)
    for m, info in out.items():
        recorded, seen = info["state"] or {}, info["backend"]
        revisions = ", ".join(
            f"{r['version']} ({r['percent']}%{'' if r['ready'] else ', not ready'})"
            for r in seen["revisions"]
        )
        table.add_row(
            m,
            recorded.get("phase", "-"),
            str(seen["stable_version"] or recorded.get("stable_version") or "-"),
            str(seen["canary_version"] or "-"),
            str(seen["canary_percent"]),
            revisions or "-",
            seen["endpoint"] or "-",
        )
    console.print(table)


@app.command("promote")
def promote_cmd(ctx: typer.Context, model: ModelOpt, target: TargetOpt = None) -> None:
    """Promote the canary in flight now (skips its remaining gates; recorded as manual)."""
    _check_model(model)
    with _engine(ctx, target, f"promote {model}") as engine:
        result = engine.promote(model)
    _print_result(result)
    _print_endpoint(engine, model)


@app.command("rollback")
def rollback_cmd(
    ctx: typer.Context,
    model: ModelOpt,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Version to return to (default: the stable, or the previous stable)."
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the history).")] = "manual",
    target: TargetOpt = None,
) -> None:
    """Roll back: drop the canary in flight, or return to an earlier version."""
    _check_model(model)
    with _engine(ctx, target, f"rollback {model}") as engine:
        result = engine.rollback(model, to, reason=reason)
    _print_result(result)
    _print_endpoint(engine, model)


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N entries (0 = all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Every recorded transition: when, who, what, versions, traffic, gate figures, reason."""
    from shelfops.rollout.state import StateStore

    settings = settings_from(ctx)
    entries = StateStore(settings.root / "rollout").history(model, target, limit or None)
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry))
        return
    if not entries:
        console.print("no rollouts recorded yet; start one with `shelfops rollout deploy`")
        return
    table = Table(title=f"rollout history ({settings.root / 'rollout' / 'history.jsonl'})")
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("by", overflow="fold")
    table.add_column("stable -> canary (%)", overflow="fold")
    table.add_column("detail", overflow="fold", ratio=1)
    for e in entries:
        gate = e.get("gate") or {}
        canary = gate.get("canary") or {}
        if canary:
            verdict = "pass" if gate.get("passed") else "FAIL"
            detail = (
                f"{verdict}: p95 {canary.get('p95_ms', float('nan')):.0f} ms, "
                f"p99 {canary.get('p99_ms', float('nan')):.0f} ms, "
                f"err {canary.get('error_rate', 0):.1%}, {canary.get('rps', 0):.0f} rps"
            )
            if not gate.get("passed"):
                detail += f" ({e.get('reason', '')})"
        else:
            detail = str(e.get("reason") or "")
            for key in ("rollback_s", "promotion_s"):
                if key in e:
                    detail += f" [{key.removesuffix('_s')} {e[key]:.2f} s]"
        versions = str(e.get("stable_version") or "-")
        if e.get("canary_version"):
            versions += f" -> {e['canary_version']} ({e.get('canary_percent', 0)}%)"
        table.add_row(
            e["at"][5:19].replace("T", " "),
            e["model"] + ("" if e["target"] == "local" else f" ({e['target']})"),
            e["event"],
            f"{e.get('actor', '?')} ({e.get('trigger', '?')})",
            versions,
            detail,
        )
    console.print(table)


@app.command("stop")
def stop_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
) -> None:
    """Stop the local runtime (splitters and bentoml serve processes)."""
    from shelfops.rollout.backends.local import LocalBackend
    from shelfops.rollout.factory import build_engine

    settings = settings_from(ctx)
    for m in [model] if model else list(MODELS):
        _check_model(m)
        engine = build_engine(settings, "local")
        assert isinstance(engine.backend, LocalBackend)
        stopped = engine.backend.stop(m)
        if stopped:
            engine.stopped(m)
        console.print(f"{m}: stopped {', '.join(stopped) if stopped else 'nothing (not running)'}")


def quickstart_step(ctx: typer.Context) -> None:
    """Canary-roll the newest trained models out to the local runtime, gated by Locust.

    The last step of ``shelfops quickstart``: each model's newest version is deployed, gated and
    promoted (or rolled back, which fails the quickstart), then the endpoints are printed.
    """
    console.rule("[bold]canary rollout to the local runtime")
    for model in MODELS:
        ctx.invoke(deploy_cmd, ctx=ctx, model=model, version="latest", target="local")
    from shelfops.rollout.backends.local import LocalBackend
    from shelfops.serving.examples import example_requests
    from shelfops.settings import RolloutSettings

    settings = settings_from(ctx)
    backend = LocalBackend(settings, RolloutSettings())
    console.print("[bold]endpoints (stop them with `shelfops rollout stop`):")
    urls: dict[str, str] = {}
    for model in MODELS:
        seen = backend.observe(model)
        if seen.endpoint:
            urls[model] = seen.endpoint
        route = "POST /recommend" if model == "recs" else "POST /forecast"
        console.print(f"  {model}: {seen.endpoint}  ({route}, KServe V2 under /v2/models/{model})")
    console.print("  history: shelfops rollout history")
    console.print("[bold]try:")
    for line in example_requests(settings, urls.get("recs"), urls.get("demand")):
        console.print(f"  {line}", soft_wrap=True, highlight=False)


if __name__ == "__main__":
    # Incident fast path: `python -m shelfops.cli.rollout rollback --model recs` imports only the
    # rollout code (about 0.5 s); settings come from SHELFOPS_* variables (SHELFOPS_HOME).
    app()
