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


def _tifu_lines() -> pd.DataFrame:
    d = pd.Timestamp("2024-03-01")
    rows = [  # customer, invoice, item, day
        ("A", "1", "x", 0),
        ("A", "2", "x", 1),
        ("A", "2", "y", 1),
        ("A", "3", "z", 2),
        ("B", "4", "y", 0),
        ("B", "4", "w", 0),
        ("C", "5", "q", 0),
    ]
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "invoice": [r[1] for r in rows],
            "stock_code": [r[2] for r in rows],
            "invoice_date": [d + pd.Timedelta(days=r[3]) for r in rows],
        }
    )


def test_tifuknn_matches_a_hand_computed_example() -> None:
    """TIFU vectors and the neighbour blend equal the figures worked out by hand."""
    from shelfops.models.baselines import tifuknn, tifuknn_vectors

    lines, cutoff = _tifu_lines(), pd.Timestamp("2024-03-10")
    kw = {"group_size": 2, "within_decay": 0.5, "group_decay": 0.5}
    mat, ids, items = tifuknn_vectors(lines, cutoff, **kw)
    a = dict(zip(items, mat[ids.index("A")].toarray().ravel(), strict=True))
    # A's baskets, newest first: {z} and {x,y} form group 0 (2 baskets), {x} group 1 (1 basket).
    # {z}: 0.5**0/2 * 0.5**0/2 = 0.25; {x,y}: 0.5**1/2 * 0.5**0/2 = 0.125;
    # {x}: 0.5**0/1 * 0.5**1/2 = 0.25.
    assert a == pytest.approx({"q": 0, "w": 0, "x": 0.375, "y": 0.125, "z": 0.25})
    # A's nearest customer is B (shares y); 0.5*A + 0.5*B = y .5625, w .5, x .1875, z .125.
    recs = tifuknn(lines, cutoff, ["A", "new"], 3, ["q", "x"], neighbours=1, alpha=0.5, **kw)
    assert recs["A"] == ["y", "w", "x"]
    assert recs["new"] == ["q", "x"]
    no_w = tifuknn(
        lines, cutoff, ["A"], 3, [], allowed={"x", "y", "z", "q"}, neighbours=1, alpha=0.5, **kw
    )
    assert no_w["A"] == ["y", "x", "z"]


def test_tifuknn_never_borrows_from_customers_outside_the_pool() -> None:
    """An opted-out customer (outside the pool) is nobody's neighbour."""
    from shelfops.models.baselines import tifuknn

    lines, cutoff = _tifu_lines(), pd.Timestamp("2024-03-10")
    kw = {"group_size": 2, "within_decay": 0.5, "group_decay": 0.5}
    recs = tifuknn(
        lines, cutoff, ["A"], 4, [], neighbour_pool={"A", "C"}, neighbours=1, alpha=0.5, **kw
    )
    assert "w" not in recs["A"] and recs["A"][0] == "q"
