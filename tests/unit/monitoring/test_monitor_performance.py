"""Accuracy on arrived actuals, hit rate and adoption, computed from the logs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from shelfops.monitoring.performance import forecast_accuracy, forecast_pairs, recs_outcomes

pytestmark = pytest.mark.unit


def _pred(ts: str, forecasts: list[dict], rid: str = "r") -> dict:
    return {
        "ts": pd.Timestamp(ts, tz="UTC"),
        "request_id": rid,
        "degraded": False,
        "outputs": json.dumps({"forecasts": forecasts}),
    }


def test_accuracy_uses_latest_forecast_made_before_the_week() -> None:
    """The forecast made last before the week wins; 1 - WAPE is computed on it."""
    preds = pd.DataFrame(
        [
            _pred("2026-11-01", [{"stock_code": "A", "week_start": "2026-11-16", "p50": 100.0}]),
            _pred("2026-11-09", [{"stock_code": "A", "week_start": "2026-11-16", "p50": 8.0}]),
            _pred("2026-11-20", [{"stock_code": "A", "week_start": "2026-11-16", "p50": 50.0}]),
        ]
    )
    actuals = pd.DataFrame(
        {
            "stock_code": ["A"],
            "week_start": [pd.Timestamp("2026-11-16", tz="UTC")],
            "units": [10.0],
            "received_at": [pd.Timestamp("2026-11-23", tz="UTC")],
        }
    )
    pairs = forecast_pairs(preds, actuals)
    assert pairs["forecast"].tolist() == [8.0]
    acc = forecast_accuracy(pairs)
    assert acc.wape == pytest.approx(0.2) and acc.accuracy == pytest.approx(0.8)


def test_hit_rate_and_adoption() -> None:
    """Hit rate counts purchases of recommended items; adoption counts any action on them."""
    preds = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "r4"],
            "ts": pd.to_datetime(["2026-11-20"] * 4, utc=True),
            "outputs": [json.dumps({"items": [{"stock_code": c} for c in ("A", "B")]})] * 4,
        }
    )
    fb = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3"],
            "stock_code": ["A", "Z", "B"],
            "action": ["bought", "bought", "viewed"],
        }
    )
    out = recs_outcomes(preds, fb)
    assert out.requests == 4 and out.requests_with_purchase == 2
    assert out.hit_rate == pytest.approx(0.5)  # r1 bought a recommended item, r2 did not
    assert out.adoption == pytest.approx(0.5)  # r1 and r3 acted on a recommended item


def test_check_exports_accuracy_and_psi_gauges() -> None:
    """A check's accuracy and pooled PSI reach the catalogue's gauges under their names."""
    from prometheus_client import CollectorRegistry

    from shelfops.monitoring.check import CheckResult, ModelCheck, export_metrics
    from shelfops.monitoring.drift import FeatureDrift
    from shelfops.observability.metrics import FEATURE_DRIFT_PSI, MODEL_ACCURACY, build_metrics

    registry = CollectorRegistry()
    check = ModelCheck("demand", "a", "b", 10, metrics={"accuracy": 0.7})
    check.drift = [
        FeatureDrift("f.units_mean_4w", "input", 100, 100, 0.31, 0.2, 1e-6, True, True),
        FeatureDrift("f.units_mean_4w", "input", 30, 30, 2.0, 0.9, 1e-9, True, True, "Garden"),
    ]
    export_metrics(CheckResult("now", [check]), build_metrics(registry))
    labels = {"model": "demand", "metric": "accuracy"}
    assert registry.get_sample_value(MODEL_ACCURACY, labels) == 0.7
    psi = {"model": "demand", "feature": "units_mean_4w"}
    assert registry.get_sample_value(FEATURE_DRIFT_PSI, psi) == 0.31  # pooled, not the segment


def test_metrics_summary_reads_requests_and_p95_bucket() -> None:
    """A scraped /metrics page yields request counts and the p95 latency bucket."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from shelfops.monitoring.report import _metrics_summary
    from shelfops.observability.metrics import build_metrics

    registry = CollectorRegistry()
    m = build_metrics(registry)
    labels = {"endpoint": "/recommend", "model": "recs", "model_version": "1"}
    for _ in range(90):
        m.request_duration.labels(**labels).observe(0.02)
    for _ in range(10):
        m.request_duration.labels(**labels).observe(0.7)
    m.requests.labels(**labels, outcome="success").inc(100)
    text = generate_latest(registry).decode()
    samples = pd.DataFrame(
        [
            {"name": s.name, "labels": json.dumps(s.labels, sort_keys=True), "value": s.value}
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        ]
    )
    summary = _metrics_summary(samples)
    p95 = summary[summary["what"].str.startswith("p95")]["value"].tolist()
    assert p95 == [0.75]  # 95% of requests finish within the 0.75 s bucket, not 0.025 s
    assert summary[summary["what"].str.startswith("requests")]["value"].tolist() == [100.0]
