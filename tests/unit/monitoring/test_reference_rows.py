"""The training reference of the demand model: weekly point-in-time snapshots of product rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shelfops.monitoring.drift import reference_rows

pytestmark = pytest.mark.unit


def test_demand_snapshots_are_the_newest_row_of_each_product_as_of_each_week(
    tmp_path: Path,
) -> None:
    """Reading only the last weeks gives each snapshot what a point-in-time read of all rows does.

    One product sells for 30 weeks, one starts 2 weeks before the data end (absent from the
    earlier snapshots), and the data end is a Sunday (snapshots fall between the Monday stamps).
    """
    stamps = pd.date_range("2026-05-04", periods=30, freq="7D", tz="UTC")
    rows = pd.concat(
        [
            pd.DataFrame({"stock_code": "OLD", "event_timestamp": stamps, "units": range(30)}),
            pd.DataFrame(
                {"stock_code": "NEW", "event_timestamp": stamps[-2:], "units": [100, 101]}
            ),
        ]
    )
    features = tmp_path / "features"
    features.mkdir()
    rows.to_parquet(features / "product_weekly.parquet", index=False)
    end = stamps[-1] + pd.Timedelta(days=6)
    got = reference_rows(features, "demand", end, weeks=4)
    want = []
    for k in range(4):
        as_of = end - pd.Timedelta(weeks=k)
        seen = rows[rows["event_timestamp"] <= as_of].sort_values("event_timestamp")
        want.append(seen.groupby("stock_code").tail(1).assign(as_of=as_of))
    expected = pd.concat(want).sort_values(["as_of", "stock_code"]).reset_index(drop=True)
    actual = got.sort_values(["as_of", "stock_code"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual[expected.columns], expected, check_dtype=False)
    assert actual["units"].tolist() == [26, 27, 100, 28, 101, 29]
