"""Monitoring closes the loop on simulated traffic through the real demand Predictor.

A small generated retailer is ingested, a demand model is trained on its feature tables, and
traffic is logged through PredictionLogger day by day (no HTTP server). Planted data drift is
detected and triggers retraining; traffic from the training distribution raises no alarm over
many seeds; planted concept drift shows as an accuracy drop on arrived actuals.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import make_home
from typer.testing import CliRunner

from shelfops.data.ingest import load_clean
from shelfops.features.build import product_weekly_features, weekly_sales
from shelfops.models.baselines import wide_panel
from shelfops.models.demand import DemandConfig, fit_demand
from shelfops.monitoring.check import Validated, check_model, read_triggers, run_check
from shelfops.monitoring.drift import load_reference, save_reference
from shelfops.monitoring.simulate import plant_category_shift
from shelfops.monitoring.store import (
    FeedbackStore,
    ForecastActual,
    PredictionLogger,
    demand_outputs,
    output_summary,
)
from shelfops.predictors.demand import DemandPredictor
from shelfops.settings import MonitorSettings, Settings

pytestmark = pytest.mark.e2e

FAST = dict(epochs=6, patience=2, hidden=32, context=16, max_train_rows=8_000, seed=3)
PER_DAY = 150
"""Logged demand requests per simulated day."""
NULL_SEEDS = 40
FALSE_ALARM_BOUND = 0.05
FIGURES_ENV = "SHELFOPS_MONITOR_FIGURES"
"""Set to a JSON file path to keep the measured figures (docs/monitoring.md quotes them)."""


@dataclass
class World:
    """A trained demand Predictor and the feature rows it was trained on."""

    predictor: DemandPredictor
    pool: pd.DataFrame  # demand_v1 rows of the last 13 weeks of training data
    outputs: list[dict[str, Any]]  # the Predictor's logged outputs for each pool row
    category: dict[str, str]


@pytest.fixture(scope="module")
def world(small_exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> World:
    """Ingest the small retailer and train a small demand model on its feature rows."""
    settings, _ = make_home(tmp_path_factory.mktemp("train"), small_exports)
    clean = load_clean(settings.root)
    panel = weekly_sales(clean["transactions"])
    panel["stock_code"] = panel["stock_code"].astype(str)
    rows = product_weekly_features(panel)
    rows["stock_code"] = rows["stock_code"].astype(str)
    cutoff = pd.Timestamp(panel["week_start"].max()) + pd.Timedelta(days=7)
    horizon = 4
    ts = rows["event_timestamp"].dt.tz_localize(None)
    val_origin = cutoff - pd.Timedelta(weeks=horizon)
    cfg = DemandConfig(horizon=horizon, **FAST)  # type: ignore[arg-type]
    model = fit_demand(
        rows[ts < val_origin],
        wide_panel(panel, cutoff),
        _demand_features(),
        val_origin,
        cfg,
        valid_rows=rows[ts == val_origin],
        valid_end=cutoff,
    )
    pool = rows[(ts > cutoff - pd.Timedelta(weeks=13)) & (ts <= cutoff)].reset_index(drop=True)
    products = clean["products"]
    category = dict(
        zip(products["stock_code"].astype(str), products["category"].astype(str), strict=True)
    )
    predictor = DemandPredictor(model, tag="shelfops_demand:test")
    return World(predictor, pool, _outputs_per_row(predictor, pool), category)


def _demand_features() -> list[str]:
    from tests.unit.models.conftest import service_features

    return service_features("demand_v1")


def _outputs_per_row(predictor: DemandPredictor, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Predict every row once (batched) and split the forecasts per row."""
    fc = predictor.predict(rows)
    origin = pd.to_datetime(fc["origin"], utc=True)
    groups = dict(tuple(fc.groupby([fc["stock_code"].astype(str), origin])))
    keys = zip(
        rows["stock_code"].astype(str),
        pd.to_datetime(rows["event_timestamp"], utc=True),
        strict=True,
    )
    return [demand_outputs(groups.get(key, fc.head(0))) for key in keys]


def _scalar(row: dict[str, Any], features: list[str]) -> dict[str, Any]:
    """What a service logs: the entity key and the scalar model inputs."""
    scalars = {f: row[f] for f in features if f in row and np.isscalar(row[f])}
    return {"stock_code": str(row["stock_code"]), **scalars}


def _log_day(
    logger: PredictionLogger,
    rows: pd.DataFrame,
    outputs: list[dict[str, Any]],
    day: pd.Timestamp,
    rng: np.random.Generator,
    features: list[str],
    n: int = PER_DAY,
) -> None:
    """Log ``n`` requests drawn from ``rows`` (with their precomputed outputs) on ``day``."""
    records = rows.to_dict(orient="records")
    for i, j in enumerate(rng.integers(0, len(records), n)):
        logger.log(
            "demand",
            "test",
            f"{day.date()}-{i}",
            None,
            _scalar(records[j], features),
            outputs[j],
            False,
            2.0,
            ts=(day + pd.Timedelta(seconds=int(i * 86_000 / n))).to_pydatetime(),
        )


def _split(world: World, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent halves of the training distribution: reference rows and live-traffic rows."""
    mask = np.random.default_rng(seed).random(len(world.pool)) < 0.5
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def _save_reference(settings: Settings, world: World, idx: np.ndarray) -> None:
    outs = [output_summary(world.outputs[i]) for i in idx]
    save_reference(
        settings,
        "demand",
        world.pool.iloc[idx].reset_index(drop=True),
        world.predictor.features,
        outputs=pd.DataFrame(outs).add_prefix("o."),
    )


def _record_figures(**figures: Any) -> None:
    """Print measured figures and keep them in $SHELFOPS_MONITOR_FIGURES when it is set."""
    print(json.dumps(figures, default=str))
    target = os.environ.get(FIGURES_ENV)
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(figures)
        path.write_text(json.dumps(data, indent=2, default=str))


def test_planted_data_drift_is_detected_and_triggers_retraining(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collapsing category plus a new trend is flagged within days and starts retraining."""
    settings = Settings(home=tmp_path / "home")
    monitor = MonitorSettings()
    ref_idx, live_idx = _split(world, seed=0)
    _save_reference(settings, world, ref_idx)
    settings.clean_dir.mkdir(parents=True)  # the CLI reads categories from the clean products
    pd.DataFrame(
        {"stock_code": list(world.category), "category": list(world.category.values())}
    ).to_parquet(settings.clean_dir / "products.parquet")
    cats = pd.Series(world.category)
    collapse = set(cats[cats == "Candles & Fragrance"].index)
    trend = set(cats[cats == "Garden"].index)
    live = world.pool.iloc[live_idx].reset_index(drop=True)
    live_out = [world.outputs[i] for i in live_idx]
    drifted = plant_category_shift(live, collapse, trend, collapse=0.1, trend=4.0)
    drift_out = _outputs_per_row(world.predictor, drifted)
    features = world.predictor.features
    rng = np.random.default_rng(1)
    start = pd.Timestamp("2026-12-01", tz="UTC")
    drift_day, days = 7, 16
    reference = load_reference(settings, "demand")
    flagged: list[int] = []
    with PredictionLogger(settings, 1.0, flush_records=10_000) as logger:
        for d in range(days):
            day = start + pd.Timedelta(days=d)
            rows, outs = (drifted, drift_out) if d >= drift_day else (live, live_out)
            _log_day(logger, rows, outs, day, rng, features)
            logger.flush()
            res = check_model(
                settings,
                monitor,
                "demand",
                now=day + pd.Timedelta(days=1),
                validated=Validated(),
                reference=reference,
                segments=world.category,
            )
            if any("drift" in b for b in res.breaches):
                flagged.append(d)
    before = [d for d in flagged if d < drift_day]
    after = [d for d in flagged if d >= drift_day]
    assert not before, f"false alarms before the drift on days {before}"
    assert after, "the planted drift was never flagged"
    delay_days = after[0] - drift_day + 1  # days of drifted traffic needed
    assert delay_days <= 3
    _record_figures(
        data_drift_detection_delay_days=delay_days,
        data_drift_detection_delay_requests=delay_days * PER_DAY,
        requests_per_day=PER_DAY,
    )
    # The CLI check exits 1 and starts retraining (the pipeline runner is stubbed here).
    from shelfops.cli.main import app
    from shelfops.monitoring import trigger

    started: list[list[str]] = []
    monkeypatch.setattr(trigger, "run_local_retrain", lambda s, m: started.append(list(m)) or 0)
    now = (start + pd.Timedelta(days=days)).isoformat()
    result = CliRunner().invoke(
        app,
        ["--home", str(settings.root), "monitor", "check", "--now", now[:19], "--retrain"],
    )
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())  # undo the console's line wrapping
    assert "significant drift" in output and "pipeline run --local" in output
    assert started == [["demand"]]
    triggers = read_triggers(settings)
    assert triggers[-1]["models"] == ["demand"]
    assert triggers[-1]["action"] == "local pipeline exit 0"
    # The report shows drift over time and what triggered the retraining.
    report = CliRunner().invoke(app, ["--home", str(settings.root), "monitor", "report"])
    assert report.exit_code == 0, report.output
    page = (settings.reports_dir / "monitoring" / "index.html").read_text()
    assert "demand_drift.png" in page and "demand_latency.png" in page
    assert "significant drift" in page and "local pipeline exit 0" in page
    assert (settings.reports_dir / "monitoring" / "demand_drift.png").stat().st_size > 1000


def test_same_distribution_raises_no_alarm_over_many_seeds(world: World, tmp_path: Path) -> None:
    """Traffic drawn from the training distribution trips the drift check in < 5% of seeds."""
    monitor = MonitorSettings()
    features = world.predictor.features
    alarms = 0
    max_psi: list[float] = []
    max_segment_psi: list[float] = []
    start = pd.Timestamp("2026-12-01", tz="UTC")
    for seed in range(NULL_SEEDS):
        settings = Settings(home=tmp_path / f"seed{seed}")
        ref_idx, live_idx = _split(world, seed=100 + seed)
        _save_reference(settings, world, ref_idx)
        live = world.pool.iloc[live_idx].reset_index(drop=True)
        outs = [world.outputs[i] for i in live_idx]
        rng = np.random.default_rng(seed)
        with PredictionLogger(settings, 1.0, flush_records=10_000) as logger:
            for d in range(monitor.window_days):
                _log_day(logger, live, outs, start + pd.Timedelta(days=d), rng, features)
        result = run_check(
            settings,
            monitor,
            ["demand"],
            now=start + pd.Timedelta(days=monitor.window_days),
            validated={"demand": Validated()},
            segments={"demand": world.category},
            save=False,
        )
        alarms += result.breached
        max_psi.append(float(result.models[0].metrics.get("max_psi") or 0.0))
        max_segment_psi.append(float(result.models[0].metrics.get("max_segment_psi") or 0.0))
    rate = alarms / NULL_SEEDS
    _record_figures(
        false_alarm_rate=rate,
        false_alarm_seeds=NULL_SEEDS,
        null_max_pooled_psi_p95=float(np.quantile(max_psi, 0.95)),
        null_max_segment_psi_p95=float(np.quantile(max_segment_psi, 0.95)),
        null_requests_per_check=PER_DAY * monitor.window_days,
    )
    assert rate <= FALSE_ALARM_BOUND, f"false-alarm rate {rate:.1%} over {NULL_SEEDS} seeds"


def test_planted_concept_drift_shows_as_accuracy_drop(world: World, tmp_path: Path) -> None:
    """Inputs unchanged but sales fall to 40% of forecasts: accuracy on actuals breaches."""
    settings = Settings(home=tmp_path / "home")
    monitor = MonitorSettings()
    store = FeedbackStore(settings)
    rng = np.random.default_rng(7)
    origins = sorted(world.pool["event_timestamp"].unique())[-10:]
    drift_from = 5  # origins[5:] see the new relationship
    features = world.predictor.features
    accuracies: list[float | None] = []
    breaches: list[bool] = []
    with PredictionLogger(settings, 1.0, flush_records=10_000) as logger:
        for k, origin in enumerate(origins):
            idx = np.flatnonzero((world.pool["event_timestamp"] == origin).to_numpy())
            rows = world.pool.iloc[idx].reset_index(drop=True)
            outs = [world.outputs[i] for i in idx]
            for i, (row, out) in enumerate(zip(rows.to_dict(orient="records"), outs, strict=True)):
                logger.log(
                    "demand",
                    "test",
                    f"{k}-{i}",
                    None,
                    _scalar(row, features),
                    out,
                    False,
                    2.0,
                    ts=pd.Timestamp(origin).to_pydatetime(),
                )
            logger.flush()
            factor = 0.4 if k >= drift_from else 1.0
            actuals = [
                ForecastActual(
                    stock_code=f["stock_code"],
                    week_start=dt.date.fromisoformat(f["week_start"]),
                    units=max(f["p50"], 0.0) * factor * float(rng.lognormal(0.0, 0.2)),
                )
                for out in outs
                for f in out["forecasts"][:1]
            ]
            store.record(actuals)
            res = check_model(
                settings,
                monitor,
                "demand",
                now=pd.Timestamp(origin) + pd.Timedelta(days=7),
                validated=Validated(accuracy=0.84),  # the accuracy this noise level gives
            )
            accuracies.append(res.metrics.get("accuracy"))  # type: ignore[arg-type]
            breaches.append(any("accuracy" in b for b in res.breaches))
    healthy = [a for a in accuracies[:drift_from] if a is not None]
    assert healthy and min(healthy) > 0.8 * 0.84, accuracies
    assert not any(breaches[:drift_from]), accuracies
    assert breaches[-1] and accuracies[-1] is not None and accuracies[-1] < 0.6
    first = breaches.index(True)
    _record_figures(
        concept_drift_detection_delay_weeks=first - drift_from + 1,
        concept_drift_accuracy_before=float(np.mean(healthy)),
        concept_drift_accuracy_after=accuracies[-1],
    )
