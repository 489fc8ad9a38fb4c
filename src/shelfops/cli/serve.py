"""``shelfops serve`` and ``shelfops bento``: run the model servers locally, build their Bentos."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from shelfops.cli.common import console, fail, progress, settings_from
from shelfops.serving.runtime import MODELS

bento_app = typer.Typer(
    help="Build and export the Bentos of the model servers.", no_args_is_help=True
)


def _models(model: str) -> list[str]:
    if model == "all":
        return list(MODELS)
    if model not in MODELS:
        raise fail(f"unknown model {model!r}; choose recs, demand or all")
    return [model]


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """Let SIGTERM (``kill``, a supervisor, ``docker stop``) stop the servers as Ctrl-C does.

    Python's default SIGTERM ends the process without running ``finally``, which would leave
    the ``bentoml serve`` children running and holding their ports.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _tail(path: Path, lines: int = 15) -> str:
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


def serve(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="recs, demand or all.")] = "all",
    recs_port: Annotated[int, typer.Option(help="Port of the recommendation server.")] = 3000,
    demand_port: Annotated[int, typer.Option(help="Port of the demand server.")] = 3001,
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the servers to load their models.")
    ] = 180.0,
) -> None:
    """Serve the newest registered models with ``bentoml serve`` until Ctrl-C (or SIGTERM)."""
    from shelfops.registry import latest_tag, use_bentoml_home
    from shelfops.serving.examples import example_requests
    from shelfops.serving.package import project_root, serve_command, wait_ready
    from shelfops.serving.runtime import REGISTRY_NAMES

    settings = settings_from(ctx)
    use_bentoml_home(settings)
    ports = {"recs": recs_port, "demand": demand_port}
    logs = settings.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, tuple[subprocess.Popen[bytes], Path, str]] = {}
    _stop_on_sigterm()
    try:
        for name in _models(model):
            if latest_tag(REGISTRY_NAMES[name]) is None:
                raise fail(
                    f"no registered {name} model under {settings.bentoml_home}; run "
                    "`shelfops quickstart` (or `shelfops train`) first"
                )
            argv, env = serve_command(settings, name, ports[name], host=host)
            log = logs / f"serve-{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    argv, env=os.environ | env, cwd=project_root(), stdout=out, stderr=out
                )
            procs[name] = (proc, log, f"http://{host}:{ports[name]}")
        with progress("loading models") as bar:
            bar.add_task(f"waiting for {', '.join(procs)} to become ready", total=None)
            for name, (proc, log, url) in procs.items():
                if not wait_ready(url, proc, ready_timeout):
                    raise fail(
                        f"the {name} server did not become ready within {ready_timeout:.0f} s "
                        f"(port {ports[name]} taken?). Last lines of {log}:\n{_tail(log)}"
                    )
        for name, (_, log, url) in procs.items():
            console.print(f"[green]{name}[/] serving on {url} (log: {log})")
        console.print("\nTry:")
        for line in example_requests(
            settings,
            procs["recs"][2] if "recs" in procs else None,
            procs["demand"][2] if "demand" in procs else None,
        ):
            console.print(f"  {line}", soft_wrap=True, highlight=False)
        console.print("\nPress Ctrl-C to stop.")
        while all(p.poll() is None for p, _, _ in procs.values()):
            time.sleep(0.5)
        dead = [n for n, (p, _, _) in procs.items() if p.poll() is not None]
        raise fail(f"the {', '.join(dead)} server stopped; see {logs}")
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _, _ in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@bento_app.command("build")
def build(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="recs, demand or all.")] = "all",
    model_tag: Annotated[
        str | None, typer.Option(help="Registry tag to pack (default: the newest version).")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="Also write each Bento as <dir>/<bento>.bento (a container context)."),
    ] = None,
) -> None:
    """Build Bentos offline from serving/<model>/bentofile.yaml."""
    from shelfops.registry import use_bentoml_home
    from shelfops.serving.package import PackagingError, build_bentos, export_bento

    settings = settings_from(ctx)
    use_bentoml_home(settings)
    names = _models(model)
    with progress(f"building {', '.join(f'shelfops-{n}' for n in names)}") as bar:
        bar.add_task("bentoml build", total=None)
        try:
            tags = build_bentos(settings, {n: model_tag if model != "all" else None for n in names})
            archives = (
                {
                    n: export_bento(settings, tag, export / f"{tag.replace(':', '-')}.bento")
                    for n, tag in tags.items()
                }
                if export
                else {}
            )
        except PackagingError as exc:
            raise fail(str(exc)) from exc
    for name, tag in tags.items():
        archive = archives.get(name)
        console.print(f"[green]built[/] {tag}" + (f" -> {archive}" if archive else ""))
