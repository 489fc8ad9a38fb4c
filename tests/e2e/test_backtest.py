"""End-to-end backtest on generated data: real importer, real Feast repo, both models."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from shelfops.data.generate import GeneratorConfig, generate
from shelfops.evaluation.backtest import run_backtest
from shelfops.evaluation.metrics import DISCOVER_LIST_METRICS, DISCOVERY_METRICS
from shelfops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_backtest_json_shape_and_model_beats_baselines(tmp_path: Path) -> None:
    """Three rolling origins and their mean per task; both models beat every baseline on it."""
    data = generate(GeneratorConfig(lines=60_000, end_date=dt.date(2025, 6, 29), seed=7))
    paths = data.write(tmp_path / "raw")
    settings = Settings(home=tmp_path / "home")
    result = run_backtest(paths["transactions"], "2025-03-31", settings, horizon_weeks=13)
    json.dumps(result)  # JSON-able
    d, r = result["demand"], result["recommendations"]
    assert set(d["baselines"]) == {"naive", "seasonal_naive", "ma4", "ma13"}
    assert set(r["baselines"]) == {"popularity", "personal_frequency", "tifuknn"}
    assert result["origins"] == ["2025-03-31", "2025-04-28", "2025-05-26"]
    for task, metric in ((d, "wrmsse"), (r, "recall@10")):
        assert list(task["per_origin"]) == result["origins"]
        mean = sum(o["model"][metric] for o in task["per_origin"].values()) / 3
        assert task["model"][metric] == pytest.approx(mean)
    assert set(d["segments"]) <= {"new", "smooth", "intermittent", "sparse"}
    assert set(d["fallback"].values()) <= {"naive", "seasonal_naive", "ma4", "ma13"}
    for weights in d["combination"].values():  # fitted on validation per segment
        assert set(weights) <= {"model", "ma4", "ma13"}
        assert sum(weights.values()) == pytest.approx(1.0)
    for key in ("wape", "rmsse", "wrmsse", "bias", "coverage_p10_p90"):
        assert isinstance(d["model"][key], float)
    for key in (
        "recall@10",
        "ndcg@10",
        "hr@10",
        "catalogue_coverage",
        "recall@10_repeat",
        "recall@10_new",
        *DISCOVERY_METRICS,
        *DISCOVER_LIST_METRICS,
    ):
        assert isinstance(r["model"][key], float)
    assert d["products_evaluated"] > 100 and r["customers_evaluated"] > 100
    assert d["wall_time_s"] > 0 and r["wall_time_s"] > 0 and result["wall_time_s"] > 0
    # Early-stopping window (before the cutoff): the network beats every baseline.
    val = d["early_stopping"]
    assert all(val["model"]["wrmsse"] < v["wrmsse"] for k, v in val.items() if k != "model"), val
    # After the cutoff, on the mean of three origins of this small sample (~250 products), the
    # model must clearly beat the naive forecasts and stay close to every baseline (it beat
    # MA13 by 8% when this was written, but trailed it by 3% on the first origin).
    imp = d["relative_improvement_wrmsse"]
    assert imp["naive"] > 0.05 and imp["seasonal_naive"] > 0.05, imp
    assert min(imp.values()) > -0.05, imp
    assert all(v > 0.0 for v in r["relative_improvement_recall@10"].values()), r
    assert Path(result["report"]).exists()
    assert "Discover list" in Path(result["report"]).read_text()
    assert (Path(result["report"]).parent / "demand_top_products.png").exists()
