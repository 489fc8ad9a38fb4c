"""Helpers every CLI command shares: the settings object, console output and progress."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shelfops.settings import Settings

console = Console()
err_console = Console(stderr=True)


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
