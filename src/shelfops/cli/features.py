"""``shelfops features``: build feature tables, apply the Feast repo, materialize."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from shelfops.cli.common import console, fail, progress, settings_from

app = typer.Typer(help="Feature tables and the Feast feature store.", no_args_is_help=True)


@app.command("apply")
def apply_cmd(ctx: typer.Context) -> None:
    """Compute the feature tables from the clean data and register them with Feast."""
    from shelfops.data.ingest import load_clean
    from shelfops.features.build import build_feature_tables
    from shelfops.features.store import FeatureRepo

    settings = settings_from(ctx)
    try:
        clean = load_clean(settings.root)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    with progress("features") as bar:
        task = bar.add_task("computing feature tables", total=None)
        tables = build_feature_tables(clean, settings.features_dir)
        bar.update(task, description="feast apply")
        names = FeatureRepo(settings).apply()
    console.print(f"[green]applied[/] {', '.join(names)}")
    console.print(f"offline sources: {tables.product_weekly.parent}")


@app.command("materialize")
def materialize_cmd(
    ctx: typer.Context,
    end: Annotated[
        str | None, typer.Option(help="Newest event time to load, YYYY-MM-DD (default: now).")
    ] = None,
) -> None:
    """Load the latest feature values into the online store (SQLite locally, Redis in cluster)."""
    from shelfops.features.store import FeatureRepo, registry_exists

    settings = settings_from(ctx)
    repo = FeatureRepo(settings)
    when = dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC) if end else None
    if not registry_exists(settings):
        raise fail("no Feast registry yet; run `shelfops features apply` first")
    with progress("materialize") as bar:
        bar.add_task("feast materialize", total=None)
        repo.materialize(when)
    console.print(
        f"[green]materialized[/] into the {repo.store.config.online_store.type} online store"
    )
