"""The catalogue the served replay rebuilds for a past cutoff."""

from __future__ import annotations

import pandas as pd
import pytest

from shelfops.evaluation.served import _products_at

pytestmark = pytest.mark.unit


def test_stock_at_a_past_cutoff_estimates_sold_out_items_and_keeps_unknown_unknown() -> None:
    """Sold out today but selling then: in stock then. No stock level reported: still unknown."""
    products = pd.DataFrame(
        {
            "stock_code": ["sold_out", "unknown", "stocked", "dead"],
            "inventory_on_hand": pd.array([0, pd.NA, 7, 0], dtype="Int64"),
            "discontinue_date": [pd.NaT, pd.NaT, pd.NaT, pd.NaT],
        }
    )
    tx = pd.DataFrame(
        {
            "stock_code": ["sold_out", "unknown", "stocked"],
            "invoice_date": pd.to_datetime(["2026-03-20", "2026-03-21", "2026-03-22"]),
            "quantity": [3, 4, 5],
        }
    )
    got = _products_at(products, tx, pd.Timestamp("2026-04-01"))
    stock = dict(zip(got["stock_code"], got["inventory_on_hand"], strict=True))
    assert stock["sold_out"] == 3  # the units it sold in the four weeks before the cutoff
    assert stock["unknown"] is pd.NA  # unknown, as the server reads it, not an estimate
    assert stock["stocked"] == 7 and stock["dead"] == 0
