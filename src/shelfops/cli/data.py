"""``shelfops data``: generate a synthetic retailer, ingest exports, import public data sets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from shelfops.cli.common import console, fail, progress, settings_from
from shelfops.data.generate import GeneratorConfig, default_end_date, generate
from shelfops.data.ingest import IngestError, QualityGateError, ingest, report_markdown
from shelfops.settings import QualityThresholds

app = typer.Typer(help="Generate and ingest retail data.", no_args_is_help=True)


@app.command("generate")
def generate_cmd(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option(help="Approximate number of transaction lines.")] = 60_000,
    customers: Annotated[int, typer.Option(help="Number of known customers.")] = 1_500,
    products: Annotated[int, typer.Option(help="Number of products over the whole period.")] = 400,
    years: Annotated[
        float, typer.Option(help="Years of history (at least 2 for seasonality).")
    ] = 2.0,
    end_date: Annotated[
        str | None, typer.Option(help="Last day of data, YYYY-MM-DD (default: last Sunday).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: SHELFOPS_SEED).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder for the CSV exports (default: <home>/raw/generated)."),
    ] = None,
) -> None:
    """Write a seeded synthetic home-decor retailer as CSV exports."""
    settings = settings_from(ctx)
    end = dt.date.fromisoformat(end_date) if end_date else default_end_date()
    config = GeneratorConfig(
        lines=lines,
        customers=customers,
        products=products,
        years=years,
        end_date=end,
        seed=settings.seed if seed is None else seed,
    )
    target = out or settings.raw_dir / "generated"
    with progress("generating") as bar:
        task = bar.add_task(f"generating ~{lines:,} lines", total=None)
        retailer = generate(config)
        bar.update(task, description="writing CSV")
        paths = retailer.write(target)
    tx = retailer.transactions
    console.print(
        f"[green]generated[/] {len(tx):,} lines, {tx['invoice'].nunique():,} invoices, "
        f"{len(retailer.products):,} products, {len(retailer.customers):,} customers "
        f"({tx['invoice_date'].min():%Y-%m-%d} to {tx['invoice_date'].max():%Y-%m-%d})"
    )
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    transactions: Annotated[Path, typer.Argument(help="Transactions file (CSV or XLSX).")],
    customers: Annotated[Path | None, typer.Option(help="Optional customers file.")] = None,
    products: Annotated[Path | None, typer.Option(help="Optional products file.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV files.")] = "utf-8",
    as_of: Annotated[
        str | None,
        typer.Option(help="Measure staleness against this date, YYYY-MM-DD (default: now)."),
    ] = None,
    max_staleness_days: Annotated[
        int | None,
        typer.Option(help="Override the staleness limit of the quality gate (-1 disables it)."),
    ] = None,
) -> None:
    """Validate an export into clean parquet; rejected rows go to quarantine with reasons."""
    settings = settings_from(ctx)
    thresholds = QualityThresholds()
    if max_staleness_days is not None:
        thresholds = thresholds.model_copy(
            update={"max_staleness_days": None if max_staleness_days < 0 else max_staleness_days}
        )
    when = dt.datetime.fromisoformat(as_of) if as_of else None
    try:
        with progress("ingesting") as bar:
            task = bar.add_task("ingesting", total=None)
            result = ingest(
                transactions,
                settings.root,
                customers_path=customers,
                products_path=products,
                policy=settings.consent_policy,
                thresholds=thresholds,
                as_of=when,
                encoding=encoding,
                progress=lambda msg: bar.update(task, description=msg),
            )
    except IngestError as exc:
        raise fail(f"{exc}\nNothing was written.") from exc
    except QualityGateError as exc:
        console.print(Markdown(report_markdown(exc.report)))
        raise fail(str(exc), code=2) from exc
    console.print(Markdown(report_markdown(result.report)))
    console.print(f"clean tables: {settings.clean_dir}")
    console.print(f"quarantine:   {result.quarantine}")
    console.print(f"report:       {result.report_paths['json']}")


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    dataset: Annotated[
        str, typer.Argument(help="Public data set to import: completejourney (Dunnhumby).")
    ],
    households: Annotated[
        int | None,
        typer.Option(help="Import only the first N households (a quick slice); default all."),
    ] = None,
) -> None:
    """Import a public retailer shipped as a package (no download) through the usual ingest."""
    from shelfops.data.completejourney import import_completejourney

    if dataset != "completejourney":
        raise fail(f"unknown data set {dataset!r}; the one available is completejourney")
    settings = settings_from(ctx)
    try:
        with progress("importing") as bar:
            task = bar.add_task("importing The Complete Journey", total=None)
            result = import_completejourney(
                settings.root,
                policy=settings.consent_policy,
                households=households,
                progress=lambda msg: bar.update(task, description=msg),
            )
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    except QualityGateError as exc:
        console.print(Markdown(report_markdown(exc.report)))
        raise fail(str(exc), code=2) from exc
    console.print(Markdown(report_markdown(result.ingest.report)))
    console.print(f"households:   {result.households:,}")
    console.print(f"clean tables: {settings.clean_dir} (+ demographics.parquet)")
    console.print(f"quarantine:   {result.ingest.quarantine}")
    console.print(f"report:       {result.ingest.report_paths['json']}")
