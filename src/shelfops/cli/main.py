"""The ``shelfops`` command: one Typer app with a sub-app per lifecycle stage."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from shelfops.cli import data, features, models, privacy
from shelfops.cli.common import console
from shelfops.settings import Settings

app = typer.Typer(
    help="ShelfOps: retail demand forecasting and recommendations, from export to canary.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(privacy.app, name="privacy")
models.register(app)


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="ShelfOps home folder (default: SHELFOPS_HOME or ./local_outputs)."),
    ] = None,
) -> None:
    """Build the settings once for every command."""
    # ibis (under Feast's DuckDB store) warns about its own deprecated calls on every read.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
    ctx.obj = Settings(home=home) if home is not None else Settings()


@app.command()
def quickstart(ctx: typer.Context) -> None:
    """Run the main job on the local default: data, features, online store, trained models."""
    settings: Settings = ctx.obj
    generated = settings.raw_dir / "generated"
    ctx.invoke(data.generate_cmd, ctx=ctx)
    ctx.invoke(
        data.ingest_cmd,
        ctx=ctx,
        transactions=generated / "transactions.csv",
        customers=generated / "customers.csv",
        products=generated / "products.csv",
    )
    ctx.invoke(features.apply_cmd, ctx=ctx)
    ctx.invoke(features.materialize_cmd, ctx=ctx)
    ctx.invoke(models.train, ctx=ctx)
    console.rule("[bold green]ShelfOps quickstart finished")
    console.print(f"everything lives under {settings.root}")
    console.print(f"  data quality report: {settings.reports_dir / 'data_quality.md'}")
    console.print(f"  clean tables:        {settings.clean_dir}")
    console.print(f"  feature store:       {settings.feast_dir}")
    console.print(f"  training report:     {settings.reports_dir / 'training' / 'index.html'}")
    console.print(f"  model store:         {settings.bentoml_home}")


if __name__ == "__main__":
    app()
