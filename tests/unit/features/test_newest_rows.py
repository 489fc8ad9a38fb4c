"""Reading the newest week of the product feature table (the demand server's start, examples)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shelfops.features.build import newest_product_rows

pytestmark = pytest.mark.unit


def test_only_the_newest_week_is_read_across_row_groups(tmp_path: Path) -> None:
    """Rows of the newest stamp from every row group; other weeks and columns are left out."""
    weeks = pd.to_datetime(["2026-11-16", "2026-11-23", "2026-11-30"], utc=True)
    frame = pd.DataFrame(
        {
            "stock_code": [f"P{p}" for p in range(4) for _ in weeks],
            "event_timestamp": list(weeks) * 4,
            "units_mean_4w": [float(p * 10 + w) for p in range(4) for w in range(3)],
        }
    )
    path = tmp_path / "product_weekly.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=5)
    got = newest_product_rows(path, ["stock_code", "units_mean_4w"])
    assert got["stock_code"].tolist() == ["P0", "P1", "P2", "P3"]
    assert got["units_mean_4w"].tolist() == [2.0, 12.0, 22.0, 32.0]
    assert (got["event_timestamp"] == weeks[-1]).all()
    assert list(newest_product_rows(path).columns) == list(frame.columns)


def test_a_table_without_sales_gives_an_empty_frame(tmp_path: Path) -> None:
    """The feature build writes a table with no columns when nothing sold."""
    path = tmp_path / "product_weekly.parquet"
    pq.write_table(pa.table({}), path)
    assert newest_product_rows(path).empty
