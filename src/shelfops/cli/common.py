"""Helpers every CLI command shares: the settings object, console output and progress."""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shelfops.settings import Settings

console = Console()
err_console = Console(stderr=True)

HOME_HELP = "ShelfOps home folder (default: SHELFOPS_HOME or ./local_outputs)."

AcceptServedGap = Annotated[
    bool,
    typer.Option(
        "--accept-served-gap",
        help="Register the recommender even when its served Recall@10 (through the server, "
        "rules and top-up) is more than 5% below its offline Recall@10; the acceptance is "
        "recorded in the registry metadata.",
    ),
]


def _with_home(callback: Callable[..., Any]) -> Callable[..., Any]:
    """The command with a ``--home`` option that replaces the settings built by the root."""
    signature = inspect.signature(callback, eval_str=True)
    if "home" in signature.parameters:
        return callback
    hints = typing.get_type_hints(callback, include_extras=True)
    home = inspect.Parameter(
        "home",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Path | None, typer.Option("--home", help=HOME_HELP)],
    )
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ]
    positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]

    # typer hands the Context to the (one) parameter annotated with it, whatever its name.
    ctx_name = next((p.name for p in params if p.annotation is typer.Context), None)
    extra = []
    if ctx_name is None:
        ctx_name = "home_ctx"
        extra.append(
            inspect.Parameter(ctx_name, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        )

    @functools.wraps(callback)
    def run(*args: Any, home: Path | None = None, **kwargs: Any) -> Any:
        ctx: Any = kwargs.get(ctx_name)
        if ctx_name == "home_ctx":
            kwargs.pop(ctx_name, None)
        if home is not None:
            settings = Settings(home=home)
            while ctx is not None:  # the command's, its group's and the root's context
                ctx.obj = settings
                ctx = ctx.parent
        return callback(*args, **kwargs)

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*positional, *keyword, home, *extra]
    )
    run.__annotations__ = {
        **hints,
        "home": home.annotation,
        **{p.name: typer.Context for p in extra},
    }
    del run.__wrapped__  # typer must read the new signature, not the wrapped one
    return run


def accept_home_everywhere(app: typer.Typer) -> None:
    """Let every command of ``app`` and its sub-apps take ``--home`` after the command name too.

    ``shelfops --home DIR privacy forget ...`` and ``shelfops privacy forget --home DIR ...``
    then do the same thing, as the README promises.
    """
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = _with_home(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            accept_home_everywhere(group.typer_instance)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings the root command built for this invocation."""
    settings = ctx.find_root().obj
    if not isinstance(settings, Settings):
        settings = Settings()
        ctx.find_root().obj = settings
    return settings


@contextlib.contextmanager
def progress(description: str) -> Iterator[Progress]:
    """A spinner with elapsed time for work that takes more than a moment."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        yield bar


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error that says what to do and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
