"""``shelfops console``: the web console for merchandisers and SREs."""

from __future__ import annotations

from typing import Annotated

import typer

from shelfops.cli.common import console as out
from shelfops.cli.common import fail, progress, settings_from


def console_cmd(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to serve the console on.")] = 8088,
    host: Annotated[
        str,
        typer.Option(
            help="Interface to bind. Anything but loopback needs SHELFOPS_CONSOLE_VIEWER_TOKEN "
            "and SHELFOPS_CONSOLE_EDITOR_TOKEN."
        ),
    ] = "127.0.0.1",
    recs_url: Annotated[
        str | None,
        typer.Option(
            help="Recommendation service to ask (default: SHELFOPS_CONSOLE_RECS_URL, else the "
            "local runtime's endpoint)."
        ),
    ] = None,
) -> None:
    """Serve the console: insights, recommendations, rules, forecasts, operations, sharing."""
    import threading

    import uvicorn

    from shelfops.console.app import create_app
    from shelfops.console.auth import ConsoleAccessError, check_bind
    from shelfops.console.warm import warm
    from shelfops.registry import use_bentoml_home
    from shelfops.settings import ConsoleSettings

    settings = settings_from(ctx)
    try:
        config = ConsoleSettings()
        if recs_url:
            config = config.model_copy(update={"recs_url": recs_url})
        check_bind(host, config.viewer_token, config.editor_token)
    except ConsoleAccessError as exc:
        raise fail(str(exc)) from exc
    if not settings.clean_dir.is_dir():
        raise fail(f"no data in {settings.root}; run `shelfops quickstart` first (or pass --home)")
    use_bentoml_home(settings)
    app = create_app(settings, config)
    with progress("reading the home (data, models, monitoring)") as bar:
        bar.add_task("warming the console's caches", total=None)
        seconds = warm(app)
    out.print(f"caches warm in {seconds:.1f} s")
    mode = (
        "sign in with a viewer or editor token"
        if config.viewer_token or config.editor_token
        else "local single-user mode: you are the editor (set tokens to share it)"
    )
    out.print(f"[green]ShelfOps console[/] on http://{host}:{port} ({mode}); Ctrl-C stops it")
    threading.current_thread().name = "console"
    uvicorn.run(app, host=host, port=port, log_level="warning")
