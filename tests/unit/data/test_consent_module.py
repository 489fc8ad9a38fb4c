"""The one consent module: null flags, opted-out rows and customers, counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shelfops.data.consent import (
    drop_opted_out,
    opted_out_count,
    personalizable_customers,
    personalization_allowed,
    rows_allowed,
)

pytestmark = pytest.mark.unit


def test_flags_decide_and_a_missing_flag_row_allows() -> None:
    """True opts out; False and null (no flag row: policy already applied at ingest) allow."""
    flags = pd.Series([True, False, None, 1, 0], dtype="object")
    assert personalization_allowed(flags).tolist() == [False, True, True, False, True]
    assert personalization_allowed([True]).tolist() == [False]


def test_rows_and_customers_are_filtered_by_the_same_rule() -> None:
    """Feature rows and the customers table drop exactly the opted-out customers."""
    rows = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "opted_out_personalization": [True, None, False]}
    )
    assert drop_opted_out(rows)["customer_id"].tolist() == ["b", "c"]
    assert rows_allowed(rows.drop(columns="opted_out_personalization")).all()
    customers = pd.DataFrame(
        {"customer_id": [1, 2, 3], "opted_out_personalization": np.array([True, False, False])}
    )
    assert personalizable_customers(customers) == {"2", "3"}
    assert opted_out_count(customers) == 1
    assert opted_out_count(customers.drop(columns="opted_out_personalization")) == 0
