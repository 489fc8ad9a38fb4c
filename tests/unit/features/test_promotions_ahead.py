"""Planned promotions reach each demand row as the next weeks' displays and mailers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shelfops.features.build import PROMOTION_WEEKS_AHEAD, product_weekly_features

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
