"""``shelfops monitor``: training reference, checks and retraining triggers, report, sink."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shelfops.cli.common import console, err_console, fail, progress, settings_from
from shelfops.settings import MonitorSettings, Settings

app = typer.Typer(
    help="Monitoring: drift and accuracy checks, retraining triggers, cost, reports.",
    no_args_is_help=True,
)

MODELS = ("demand", "recs")
SampleRate = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="Share logged (default SHELFOPS_MONITOR_SAMPLE_RATE)."),
]


def _model_or_fail(model: str) -> str:
    if model not in MODELS:
        raise fail(f"unknown model {model!r}: use demand or recs")
    return model


def _predictor(settings: Settings, model: str) -> Any:
    from shelfops.registry import use_bentoml_home

    use_bentoml_home(settings)
    import bentoml

    from shelfops.predictors.demand import DemandPredictor
    from shelfops.predictors.recs import RecsPredictor
    from shelfops.registry import DEMAND_MODEL, RECS_MODEL, latest_tag

    cls = DemandPredictor if model == "demand" else RecsPredictor
    try:
        return cls.from_registry(latest_tag(DEMAND_MODEL if model == "demand" else RECS_MODEL))
    except bentoml.exceptions.NotFound as exc:
        raise fail(
            f"no trained {model} model under {settings.bentoml_home}: run `shelfops train` "
            "(or `shelfops quickstart`) first"
        ) from exc


def _recs_rows(settings: Settings, rows: Any) -> Any:
    import pandas as pd

    consent_path = settings.features_dir / "customer_consent.parquet"
    if not consent_path.exists():
        return rows
    consent = pd.read_parquet(consent_path).drop(columns="event_timestamp")
    rows = rows.assign(customer_id=rows["customer_id"].astype(str))
    consent = consent.assign(customer_id=consent["customer_id"].astype(str))
    return rows.merge(consent, on="customer_id", how="left")


@app.command("reference")
def reference_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Model: demand or recs.")] = "demand",
    weeks: Annotated[
        int, typer.Option(min=1, max=104, help="Weeks before the data end to take rows from.")
    ] = 13,
    max_predictions: Annotated[
        int, typer.Option(min=0, help="Reference rows also predicted, for prediction drift.")
    ] = 2000,
) -> None:
    """Write the training reference of a model from the offline features of its data window."""
    import pandas as pd

    from shelfops.monitoring.drift import reference_rows, save_reference

    settings = settings_from(ctx)
    _model_or_fail(model)
    predictor = _predictor(settings, model)
    from shelfops.registry import model_metadata

    meta = model_metadata(predictor.tag)
    end = pd.Timestamp((meta.get("data_window") or {}).get("end") or pd.Timestamp.now())
    try:
        rows = reference_rows(settings.features_dir, model, end + pd.Timedelta(days=1), weeks)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    if rows.empty:
        raise fail(f"no feature rows in the {weeks} weeks before {end.date()}: widen --weeks")
    outputs = None
    if max_predictions:
        outputs = _reference_outputs(settings, model, predictor, rows, max_predictions)
    path = save_reference(
        settings,
        model,
        rows,
        predictor.features,
        outputs=outputs,
        info={"tag": predictor.tag, "data_end": str(end.date()), "weeks": weeks},
    )
    console.print(f"[green]reference[/] for {model} ({len(rows):,} rows, tag {predictor.tag})")
    console.print(f"  written to {path}")


def _reference_outputs(settings: Settings, model: str, predictor: Any, rows: Any, n: int) -> Any:
    import pandas as pd

    from shelfops.monitoring.store import demand_outputs, output_summary, recs_outputs

    sample = rows.sample(n=min(n, len(rows)), random_state=settings.seed)
    summaries: list[dict[str, float]] = []
    with progress(f"predicting {len(sample):,} reference rows") as bar:
        bar.add_task("predict", total=None)
        if model == "demand":
            fc = predictor.predict(sample)
            for _, group in fc.groupby(["stock_code", "origin"]):
                summaries.append(output_summary(demand_outputs(group)))
        else:
            recs = predictor.predict(_recs_rows(settings, sample), k=10)
            summaries = [output_summary(recs_outputs(items)) for items in recs.values()]
    frame = pd.DataFrame(summaries)
    return frame.add_prefix("o.")


@app.command("simulate")
def simulate_cmd(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None, typer.Option(help="Model to send traffic to (repeatable; default both).")
    ] = None,
    requests: Annotated[int, typer.Option(min=1, help="Requests per model.")] = 500,
    sample_rate: SampleRate = None,
) -> None:
    """Send in-process traffic through the trained Predictors and log it like the services do."""
    import pandas as pd

    from shelfops.monitoring.cost import CostMeter
    from shelfops.monitoring.simulate import latest_rows, log_demand_requests, log_recs_requests
    from shelfops.monitoring.store import PredictionLogger

    settings = settings_from(ctx)
    monitor = MonitorSettings()
    names = [_model_or_fail(m) for m in (model or list(MODELS))]
    logger = PredictionLogger(settings, sample_rate, monitor=monitor)
    try:
        for name in names:
            predictor = _predictor(settings, name)
            version = str(predictor.tag).split(":")[-1]
            meter = CostMeter(name, monitor, settings=settings)
            table = "product_weekly" if name == "demand" else "customer_behaviour"
            path = settings.features_dir / f"{table}.parquet"
            if not path.exists():
                raise fail(f"{path} is missing: run `shelfops quickstart` first")
            key = "stock_code" if name == "demand" else "customer_id"
            rows = latest_rows(pd.read_parquet(path), key)
            rows = rows.sample(n=requests, replace=len(rows) < requests, random_state=settings.seed)
            with progress(f"{name}: {requests:,} requests") as bar:
                bar.add_task(name, total=None)
                for start in range(0, len(rows), 100):
                    batch = rows.iloc[start : start + 100]
                    if name == "demand":
                        log_demand_requests(predictor, batch, logger, version=version, cost=meter)
                    else:
                        log_recs_requests(
                            predictor,
                            _recs_rows(settings, batch),
                            logger,
                            version=version,
                            cost=meter,
                        )
            snap = meter.flush()
            console.print(
                f"{name}: logged traffic, cost per 1k predictions "
                f"${snap.cost_per_1k_usd or 0:.5f} (budget ${snap.budget_per_1k_usd:.5f})"
            )
    finally:
        written = logger.close()
    console.print(
        f"prediction log under {settings.root / 'monitoring'} ({len(written)} part files)"
    )


def _categories(settings: Settings) -> dict[str, str]:
    """Product category per stock code from the clean products table (empty when absent)."""
    import pandas as pd

    path = settings.clean_dir / "products.parquet"
    if not path.exists():
        return {}
    products = pd.read_parquet(path, columns=["stock_code", "category"]).dropna()
    return dict(
        zip(products["stock_code"].astype(str), products["category"].astype(str), strict=True)
    )


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None, typer.Option(help="Model to check (repeatable; default every logged).")
    ] = None,
    now: Annotated[
        dt.datetime | None, typer.Option(help="End of the checked window (default: now, UTC).")
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            help="On a breach, start retraining: `shelfops pipeline run --local` in the local "
            "profile; a GitHub repository_dispatch in the cluster profile."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="With --retrain, print the trigger instead of acting on it.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="Also write the result here.")
    ] = None,
) -> None:
    """Compare recent traffic with the training reference and the truth; exit 1 on a breach."""
    from shelfops.monitoring.check import run_check

    settings = settings_from(ctx)
    monitor = MonitorSettings()
    segments = {"demand": _categories(settings)}
    with progress("checking drift, accuracy and cost") as bar:
        bar.add_task("check", total=None)
        result = run_check(settings, monitor, model or None, now=now, segments=segments)
    if not result.models:
        raise fail(
            "nothing to check: no predictions are logged under "
            f"{settings.root / 'monitoring'} yet. Running services write their log every "
            f"{monitor.flush_seconds:g} s or {monitor.flush_records:,} requests "
            "(SHELFOPS_MONITOR_FLUSH_SECONDS) and when stopped (`shelfops rollout stop`); "
            "gate, load-test and warm-up traffic is never logged. Wait for the flush, or try "
            "the check on simulated traffic with `shelfops monitor simulate`"
        )
    for m in result.models:
        colour = "red" if m.breaches else "green"
        console.print(f"[bold {colour}]{m.model}[/]: {m.predictions:,} predictions in the window")
        shown = sorted(m.drift, key=lambda d: (not d.drifted, not d.judged, -d.psi))[:6]
        for d in shown:
            flag = "[red]drifted[/]" if d.drifted else ("ok" if d.judged else "too few rows")
            p = "-" if d.p_value is None else f"{d.p_value:.2g}"
            where = f" in {d.segment}" if d.segment else ""
            console.print(f"  {d.feature}{where}: PSI {d.psi:.3f}, KS p {p} ({flag})")
        for k, v in m.metrics.items():
            if v is not None:
                console.print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
        for note in m.notes:
            console.print(f"  [dim]{note}[/]")
        for b in m.breaches:
            console.print(f"  [red]breach:[/] {b}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    if not result.breached:
        console.print("[green]no threshold breached[/]")
        return
    models = result.retrain_models()
    console.print(f"[bold red]retraining trigger[/] for {', '.join(models)}")
    if retrain:
        _retrain(settings, monitor, models, result.breaches, dry_run)
    else:
        console.print("  recorded; pass --retrain to start retraining")
    raise typer.Exit(code=1)


def _retrain(
    settings: Settings,
    monitor: MonitorSettings,
    models: list[str],
    reasons: list[str],
    dry_run: bool,
) -> None:
    from shelfops.monitoring import trigger
    from shelfops.monitoring.check import record_trigger

    if settings.profile == "cluster":
        try:
            request = trigger.build_dispatch_request(monitor, models, reasons)
        except ValueError as exc:
            raise fail(str(exc)) from exc
        console.print(f"  repository_dispatch POST {request.full_url}")
        if dry_run:
            console.print(f"  body {request.data!r} (dry run: not sent)")
            return
        status = trigger.send_dispatch(request)
        record_trigger(
            settings, models, reasons, source="monitor check", action=f"dispatch {status}"
        )
        console.print(f"  GitHub answered {status}")
        return
    command = trigger.local_retrain_command(settings)
    console.print(f"  running {' '.join(command)}")
    if dry_run:
        return
    code = trigger.run_local_retrain(settings, models)
    record_trigger(
        settings, models, reasons, source="monitor check", action=f"local pipeline exit {code}"
    )
    if code != 0:
        err_console.print(
            f"the training pipeline exited {code}; is `shelfops pipeline run --local` available "
            "in this version? Retrain by hand with `shelfops train`."
        )


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Report folder (default <home>/reports/monitoring)."),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="A service's /metrics URL to scrape for latency and throughput."),
    ] = None,
) -> None:
    """Write the HTML monitoring report: drift, accuracy, latency, cost, adoption, triggers."""
    from shelfops.monitoring.report import write_monitor_report

    settings = settings_from(ctx)
    with progress("writing the monitoring report") as bar:
        bar.add_task("report", total=None)
        path = write_monitor_report(settings, MonitorSettings(), out, metrics_url=metrics_url)
    console.print(f"report: {path}")


@app.command("sink")
def sink_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 inside a container).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    sample_rate: SampleRate = None,
) -> None:
    """Run the KServe payload-logger sink: CloudEvents in, prediction log out."""
    import uvicorn

    from shelfops.monitoring.sink import PayloadSink
    from shelfops.monitoring.store import PredictionLogger

    settings = settings_from(ctx)
    logger = PredictionLogger(settings, sample_rate)
    console.print(f"payload sink on http://{host}:{port} writing under {settings.root}")
    uvicorn.run(PayloadSink(logger), host=host, port=port, log_level="warning", lifespan="on")
