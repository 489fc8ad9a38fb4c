"""The prediction logger and the feedback store: buffering, sampling, threads, validation."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from shelfops.monitoring.store import (
    FeedbackEvent,
    FeedbackStore,
    ForecastActual,
    PredictionLogger,
    RecommendationFeedback,
    output_summary,
    parse_feedback,
    read_predictions,
)
from shelfops.settings import MonitorSettings, Settings

pytestmark = pytest.mark.unit


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def _log(logger: PredictionLogger, i: int, customer: str | None = "C1") -> bool:
    return logger.log(
        "recs",
        "v1",
        f"r{i}",
        customer,
        {"invoices_total": i, "favourite_category": "lamps", "top_items": ["a", "b"]},
        {"items": [{"stock_code": "A", "score": 0.5}, {"stock_code": "B", "score": 0.25}]},
        False,
        1.5,
    )


def test_log_flushes_to_parquet_with_flat_columns(tmp_path: Path) -> None:
    """Logged records land in a parquet part with f./o. columns; lists are not logged."""
    settings = _settings(tmp_path)
    logger = PredictionLogger(settings, 1.0, flush_records=10_000, flush_seconds=60)
    for i in range(5):
        assert _log(logger, i)
    assert read_predictions(settings).empty  # still buffered
    written = logger.close()
    assert len(written) == 1 and written[0].parent.name == "recs"
    log = read_predictions(settings)
    assert len(log) == 5
    assert list(log["f.invoices_total"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert set(log["f.favourite_category"]) == {"lamps"}
    assert "f.top_items" not in log
    assert log["o.items.score"].iloc[0] == pytest.approx(0.375)
    assert log["customer_id"].iloc[0] == "C1"
    assert str(log["ts"].dtype) == "datetime64[us, UTC]" or "UTC" in str(log["ts"].dtype)


def test_background_flush_by_count(tmp_path: Path) -> None:
    """Reaching flush_records wakes the writer thread, which writes without a close()."""
    settings = _settings(tmp_path)
    logger = PredictionLogger(settings, 1.0, flush_records=3, flush_seconds=30)
    for i in range(3):
        _log(logger, i)
    for _ in range(100):
        if logger.written_files:
            break
        threading.Event().wait(0.05)
    assert logger.written_files, "the background thread did not flush at flush_records"
    assert len(read_predictions(settings)) == 3
    logger.close()


def test_sampling_rate_is_honoured(tmp_path: Path) -> None:
    """A 10% sample rate keeps about 10% of 5,000 requests."""
    logger = PredictionLogger(_settings(tmp_path), 0.1, flush_records=100_000, seed=1)
    kept = sum(_log(logger, i) for i in range(5000))
    logger.close()
    assert 400 <= kept <= 600


def test_concurrent_logging_loses_nothing(tmp_path: Path) -> None:
    """Eight threads logging at once with frequent flushes write every record exactly once."""
    settings = _settings(tmp_path)
    logger = PredictionLogger(settings, 1.0, flush_records=50, flush_seconds=0.05)

    def work(t: int) -> None:
        for i in range(250):
            _log(logger, t * 1000 + i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    log = read_predictions(settings)
    assert len(log) == 2000 and log["request_id"].is_unique


def test_closed_logger_refuses_and_bad_rate_rejected(tmp_path: Path) -> None:
    """Logging after close() raises; a sample rate outside 0..1 is refused."""
    logger = PredictionLogger(_settings(tmp_path), 1.0)
    logger.close()
    with pytest.raises(RuntimeError, match="closed"):
        _log(logger, 1)
    with pytest.raises(ValueError, match="sample_rate"):
        PredictionLogger(_settings(tmp_path), 1.5)


def test_sample_rate_defaults_to_settings(tmp_path: Path) -> None:
    """Without an explicit rate the logger takes SHELFOPS_MONITOR_SAMPLE_RATE's setting."""
    logger = PredictionLogger(_settings(tmp_path), monitor=MonitorSettings(sample_rate=0.25))
    assert logger.sample_rate == 0.25
    logger.close()


def test_output_summary_shapes() -> None:
    """Scalars, number lists and record lists become numeric summaries."""
    s = output_summary(
        {
            "confidence": 0.9,
            "scores": [1, 3],
            "forecasts": [{"p50": 2.0, "stock_code": "A"}, {"p50": 4.0, "stock_code": "B"}],
            "label": "x",
        }
    )
    assert s == {"confidence": 0.9, "scores.mean": 2.0, "forecasts.p50": 3.0}


def test_feedback_events_validate_and_infer_kind() -> None:
    """Events without kind are told apart by their fields; bad actions and non-Mondays fail."""
    events = parse_feedback(
        [
            {
                "request_id": "r1",
                "customer_id": "C1",
                "stock_code": "A",
                "action": "bought",
                "timestamp": "2026-11-20T10:00:00Z",
            },
            {"stock_code": "A", "week_start": "2026-11-16", "units": 4},
        ]
    )
    assert isinstance(events[0], RecommendationFeedback)
    assert isinstance(events[1], ForecastActual)
    with pytest.raises(ValidationError):
        parse_feedback(
            [
                {
                    "request_id": "r",
                    "customer_id": "C",
                    "stock_code": "A",
                    "action": "liked",
                    "timestamp": "2026-11-20T10:00:00Z",
                }
            ]
        )
    with pytest.raises(ValidationError, match="Monday"):
        parse_feedback([{"stock_code": "A", "week_start": "2026-11-17", "units": 1}])
    with pytest.raises(ValidationError):
        parse_feedback([{"stock_code": "A", "week_start": "2026-11-16", "units": -1}])


def test_feedback_store_roundtrip(tmp_path: Path) -> None:
    """Recorded feedback reads back by kind with UTC timestamps."""
    store = FeedbackStore(_settings(tmp_path))
    n = store.record(
        [
            RecommendationFeedback(
                request_id="r1",
                customer_id="C1",
                stock_code="A",
                action="viewed",
                timestamp=dt.datetime(2026, 11, 20, 10),
            ),
            ForecastActual(stock_code="A", week_start=dt.date(2026, 11, 16), units=3),
        ]
    )
    assert n == 2
    recs, actuals = store.read("recommendation"), store.read("actual")
    assert list(recs["action"]) == ["viewed"] and list(recs["customer_id"]) == ["C1"]
    assert actuals["units"].tolist() == [3.0]
    assert actuals["week_start"].iloc[0] == pd.Timestamp("2026-11-16", tz="UTC")
    assert store.record([]) == 0


def test_feedback_event_works_as_a_fastapi_body() -> None:
    """`list[FeedbackEvent]` validates a POST /feedback body and appears in the OpenAPI schema."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.post("/feedback")
    def feedback(events: list[FeedbackEvent]) -> dict[str, list[str]]:
        return {"kinds": [e.kind for e in events]}

    assert {"RecommendationFeedback", "ForecastActual"} <= set(
        app.openapi()["components"]["schemas"]
    )
    client = TestClient(app)
    ok = client.post(
        "/feedback",
        json=[
            {
                "request_id": "r",
                "customer_id": "C",
                "stock_code": "A",
                "action": "bought",
                "timestamp": "2026-11-20T10:00:00Z",
            },
            {"stock_code": "A", "week_start": "2026-11-16", "units": 3},
        ],
    )
    assert ok.status_code == 200 and ok.json() == {"kinds": ["recommendation", "actual"]}
    bad = client.post("/feedback", json=[{"stock_code": "A", "week_start": "2026-11-17"}])
    assert bad.status_code == 422


def test_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    """When the writer cannot keep up, records beyond max_buffer are dropped and counted."""
    logger = PredictionLogger(_settings(tmp_path), 1.0, flush_records=10_000, max_buffer=5)
    kept = [_log(logger, i) for i in range(8)]
    assert kept == [True] * 5 + [False] * 3 and logger.dropped == 3
    assert len(logger.close()) == 1
