"""`shelfops privacy forget` removes logged predictions, feedback and reference rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shelfops.cli.main import app
from shelfops.monitoring.drift import load_reference, save_reference
from shelfops.monitoring.store import (
    FeedbackStore,
    ForecastActual,
    PredictionLogger,
    RecommendationFeedback,
    read_predictions,
)
from shelfops.settings import Settings

pytestmark = pytest.mark.unit


def test_forget_removes_logged_predictions_and_feedback(tmp_path: Path) -> None:
    """After forget no prediction, feedback or reference row of the customer is left."""
    settings = Settings(home=tmp_path / "home")
    with PredictionLogger(settings, 1.0, flush_records=4) as logger:
        for i in range(12):
            logger.log(
                "recs",
                "v1",
                f"r{i}",
                "C7" if i % 3 == 0 else f"C{100 + i}",
                {"invoices_total": i},
                {"items": [{"stock_code": "A", "score": 0.1}]},
                False,
                1.0,
            )
        logger.log("demand", "v1", "d1", None, {"units_last_week": 1.0}, {}, False, 1.0)
    store = FeedbackStore(settings)
    when = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    store.record(
        [
            RecommendationFeedback(
                request_id="r0", customer_id="C7", stock_code="A", action="bought", timestamp=when
            ),
            RecommendationFeedback(
                request_id="r1",
                customer_id="C101",
                stock_code="A",
                action="viewed",
                timestamp=when,
            ),
            ForecastActual(stock_code="A", week_start=dt.date(2026, 11, 16), units=2),
        ]
    )
    rows = pd.DataFrame({"customer_id": ["C7", "C8"], "invoices_total": [3.0, 4.0]})
    save_reference(settings, "recs", rows, ["invoices_total"])
    assert (read_predictions(settings, "recs")["customer_id"] == "C7").sum() == 4

    result = CliRunner().invoke(
        app, ["--home", str(settings.root), "privacy", "forget", "--customer-id", "C7"]
    )
    assert result.exit_code == 0, result.output
    assert "monitoring" in result.output

    log = read_predictions(settings)
    assert not (log["customer_id"] == "C7").any()
    assert len(log) == 13 - 4  # other customers and the demand record are kept
    feedback = store.read()
    assert not (feedback["customer_id"] == "C7").any() and len(feedback) == 2
    assert load_reference(settings, "recs")["customer_id"].tolist() == ["C8"]
    # The data is gone from disk, not just hidden: no file under the home mentions C7.
    for path in (settings.root / "monitoring").rglob("*.parquet"):
        assert b"C7" not in path.read_bytes(), path
