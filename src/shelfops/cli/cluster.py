"""``shelfops cluster``: the cluster-profile stack as containers on this machine.

``make cluster-up`` / ``make cluster-down`` / ``make cluster-e2e`` call these after starting the
engine and building the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shelfops.cli.common import console, fail

if TYPE_CHECKING:
    from shelfops.containers.stack import StackPaths

app = typer.Typer(
    help="The cluster profile as containers on one machine (engine, images, stack, e2e).",
    no_args_is_help=True,
)

Root = Annotated[
    Path,
    typer.Option(help="The ShelfOps checkout (chart, compiled pipeline, .build).", exists=True),
]
Name = Annotated[
    str,
    typer.Option(help="Stack name: prefix and label value of every container, volume, network."),
]


def _paths(root: Path, name: str) -> StackPaths:
    from shelfops.containers.stack import StackPaths

    return StackPaths(root=root.resolve(), name=name)


@app.command("up")
def up_cmd(root: Root = Path("."), name: Name = "shelfops-stack") -> None:
    """Start Redis, the home volume with the Feast registry and the stable model servers."""
    from shelfops.containers.stack import up

    with console.status(f"starting stack {name}") as status:
        try:
            record = up(_paths(root, name), lambda line: console.print(f"  [green]+[/] {line}"))
        except (RuntimeError, AssertionError, FileNotFoundError) as exc:
            status.stop()
            raise fail(f"{exc}\n(`make cluster-down` removes what was started)") from exc
    console.print(
        f"[bold green]stack {name} up[/]: recs on 127.0.0.1:{record['ports']['recs']}, "
        f"demand on 127.0.0.1:{record['ports']['demand']}"
    )


@app.command("down")
def down_cmd(root: Root = Path("."), name: Name = "shelfops-stack") -> None:
    """Remove exactly what `cluster up` and `cluster e2e` created (by the stack's label)."""
    from shelfops.containers.stack import down

    removed = down(_paths(root, name), lambda line: console.print(f"  [red]-[/] {line}"))
    console.print(f"stack {name} down ({len(removed)} removals)")


@app.command("e2e")
def e2e_cmd(root: Root = Path("."), name: Name = "shelfops-stack") -> None:
    """Drive the stack end to end (pipeline, containerize, serve, canary, rollbacks, forget)."""
    from shelfops.containers.e2e import Stage, run_e2e

    def show(stage: Stage) -> None:
        if stage.status == "running":
            console.print(f"[cyan]>[/] {stage.name} ...")
        else:
            colour = "green" if stage.status == "ok" else "red"
            console.print(f"  [{colour}]{stage.status}[/] in {stage.seconds:.1f} s: {stage.detail}")

    try:
        with console.status("cluster e2e running"):
            run = run_e2e(_paths(root, name), on_stage=show)
    except (RuntimeError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    table = Table(title=f"cluster-e2e on stack {name}")
    table.add_column("stage")
    table.add_column("wall s", justify="right")
    table.add_column("result")
    for stage in run.stages:
        table.add_row(stage.name, f"{stage.seconds:.1f}", stage.status)
    table.add_row(
        "total", f"{sum(s.seconds for s in run.stages):.1f}", "ok" if run.ok else "FAILED"
    )
    console.print(table)
    if not run.ok:
        raise typer.Exit(1)
