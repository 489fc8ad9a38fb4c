"""Product-week feature rows: planned promotions ahead, and writing them in product blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shelfops.data.parquet import write_parquet_parts
from shelfops.features.build import (
    PROMOTION_WEEKS_AHEAD,
    product_blocks,
    product_weekly_features,
)

pytestmark = pytest.mark.unit


def test_rows_carry_the_promotions_of_the_weeks_from_their_stamp_on() -> None:
    """A row stamped Monday M holds week M's plan first, then the following weeks'."""
    weeks = pd.date_range("2024-01-01", periods=6, freq="7D")
    panel = pd.DataFrame(
        {
            "stock_code": "a",
            "week_start": weeks,
            "units": [1.0, 2, 3, 4, 5, 6],
            "revenue": [10.0, 20, 30, 40, 50, 60],
            "avg_price": 10.0,
        }
    )
    promos = pd.DataFrame(
        {
            "stock_code": ["a", "a", "b"],
            "week_start": [weeks[2], weeks[5] + pd.Timedelta(weeks=2), weeks[2]],
            "display_stores": [7, 3, 9],
            "mailer_stores": [0, 11, 9],
        }
    )
    rows = product_weekly_features(panel, promos).set_index("event_timestamp")
    # Stamped on week 2's Monday (summarising week 1): the plan starts with week 2.
    at_week2 = rows.loc[pd.Timestamp(weeks[2], tz="UTC")]
    assert len(at_week2["display_stores_ahead"]) == PROMOTION_WEEKS_AHEAD
    assert at_week2["display_stores_ahead"][0] == 7 and at_week2["mailer_stores_ahead"][0] == 0
    # Stamped after the last week: a promotion planned two weeks past the data is known.
    last = rows.iloc[-1]
    assert last["mailer_stores_ahead"][1] == 11 and np.sum(last["display_stores_ahead"]) == 3
    plain = product_weekly_features(panel)
    assert all(len(v) == 0 for v in plain["display_stores_ahead"])  # none planned: empty


def test_feature_tables_written_in_product_blocks_equal_the_whole_table(tmp_path: Path) -> None:
    """Block-wise writing of product-week rows gives the same rows as building them at once."""
    weeks = pd.date_range("2024-01-01", periods=60, freq="7D")
    rng = np.random.default_rng(0)
    panel = pd.concat(
        pd.DataFrame(
            {
                "stock_code": code,
                "week_start": weeks[start:],
                "units": rng.poisson(3, len(weeks) - start).astype(float),
                "revenue": 1.0,
                "avg_price": 2.0,
            }
        )
        for code, start in [("a", 0), ("b", 10), ("c", 55), ("d", 3), ("e", 30)]
    )
    whole = product_weekly_features(panel)
    write_parquet_parts(
        (product_weekly_features(p) for p in product_blocks(panel, 2)), tmp_path / "p"
    )
    parts = pd.read_parquet(tmp_path / "p")
    assert [len(p["stock_code"].unique()) for p in product_blocks(panel, 2)] == [2, 2, 1]
    key = ["stock_code", "event_timestamp"]
    a, b = whole.sort_values(key), parts.sort_values(key)
    assert a["stock_code"].tolist() == b["stock_code"].tolist()
    assert np.allclose(np.stack(a["units_history_52w"]), np.stack(b["units_history_52w"]))
    assert np.allclose(a["units_mean_13w"], b["units_mean_13w"])
