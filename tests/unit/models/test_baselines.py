"""Baseline forecasters and recommenders on hand-made data."""

from __future__ import annotations

import pandas as pd
import pytest

from shelfops.models.baselines import demand_baselines, item_popularity, personal_frequency

pytestmark = pytest.mark.unit


def _panel() -> pd.DataFrame:
    weeks = pd.date_range("2024-01-01", periods=60, freq="7D")
    units = [float(i % 7) for i in range(60)]
    return pd.DataFrame({"stock_code": "a", "week_start": weeks, "units": units})


def test_demand_baselines_values() -> None:
    """Naive, seasonal naive and moving averages read the right past weeks."""
    panel = _panel()
    origin = pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=56)
    out = demand_baselines(panel, origin, ["a"], horizon=3)
    units = panel["units"].tolist()
    assert out["naive"]["forecast"].tolist() == [units[55]] * 3
    assert out["ma4"]["forecast"].iloc[0] == pytest.approx(sum(units[52:56]) / 4)
    assert out["ma13"]["forecast"].iloc[0] == pytest.approx(sum(units[43:56]) / 13)
    assert out["seasonal_naive"]["forecast"].tolist() == units[4:7]


def test_popularity_and_personal_frequency() -> None:
    """Own most-bought items come first, then popular ones; disallowed items never appear."""
    d = pd.Timestamp("2024-03-01")
    lines = pd.DataFrame(
        {
            "invoice": ["1", "2", "3", "4", "5", "6"],
            "customer_id": ["c", "c", "c", "d", "d", "e"],
            "stock_code": ["x", "x", "y", "p", "x", "q"],
            "invoice_date": [d, d, d, d, d, d],
        }
    )
    cutoff = pd.Timestamp("2024-03-04")
    pop = item_popularity(lines, cutoff, 4, allowed={"x", "y", "p"})
    assert pop[0] == "x" and "q" not in pop
    recs = personal_frequency(lines, cutoff, ["c", "new"], 3, pop, allowed={"x", "y", "p"})
    assert recs["c"] == ["x", "y", "p"]
    assert recs["new"] == pop[:3]


def test_baseline_from_features_matches_the_panel_baselines() -> None:
    """Serving's feature-based fallback equals each evaluation baseline computed from the panel."""
    from shelfops.features.build import product_weekly_features
    from shelfops.models.baselines import DEMAND_BASELINES, baseline_from_features

    weeks = pd.date_range("2024-01-01", periods=70, freq="7D")
    units = [float((i * 7) % 11) for i in range(70)]
    panel = pd.DataFrame(
        {
            "stock_code": "A",
            "week_start": weeks,
            "units": units,
            "revenue": units,
            "avg_price": 1.0,
        }
    )
    origin = weeks[-1] + pd.Timedelta(days=7)
    features = product_weekly_features(panel)
    row = features[features["event_timestamp"] == pd.Timestamp(origin, tz="UTC")].iloc[0].to_dict()
    expected = demand_baselines(panel, origin, ["A"], horizon=6)
    for name in DEMAND_BASELINES:
        got = baseline_from_features(name, row, horizon=6)
        want = expected[name].sort_values("step")["forecast"].to_numpy()
        assert got == pytest.approx(want, rel=1e-5), name
    with pytest.raises(ValueError, match="unknown demand baseline"):
        baseline_from_features("prophet", row, horizon=6)
