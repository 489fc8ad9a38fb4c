"""Contracts map the usual header spellings and reject tables that break them."""

from __future__ import annotations

import pandas as pd
import pytest

from shelfops.data.contracts import (
    CUSTOMERS,
    PRODUCTS,
    TRANSACTIONS,
    ContractError,
    empty_frame,
    validate_clean,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "headers",
    [
        [
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ],
        [
            "Invoice",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "Price",
            "Customer ID",
            "Country",
        ],
        [
            "invoice",
            "stock_code",
            "description",
            "quantity",
            "invoice_date",
            "unit_price",
            "customer_id",
            "country",
        ],
    ],
)
def test_header_spellings_map_to_canonical_names(headers: list[str]) -> None:
    """Every common export spelling maps onto the eight canonical columns."""
    mapping = TRANSACTIONS.header_map(headers)
    assert sorted(mapping.values()) == sorted(TRANSACTIONS.names)


def test_required_columns_are_the_non_nullable_ones() -> None:
    """Description, customer id and country may be blank; the rest are required."""
    assert set(TRANSACTIONS.required) == {
        "invoice",
        "stock_code",
        "quantity",
        "invoice_date",
        "unit_price",
    }
    assert CUSTOMERS.required == ["customer_id"]
    assert PRODUCTS.required == ["stock_code"]


def test_empty_frames_satisfy_their_contracts() -> None:
    """The typed empty frame of each contract validates."""
    for contract in (TRANSACTIONS, CUSTOMERS, PRODUCTS):
        validate_clean(empty_frame(contract), contract)


def test_violations_are_all_named() -> None:
    """A table with a missing column, a wrong type and a null key fails with every problem."""
    frame = empty_frame(TRANSACTIONS).drop(columns="country")
    frame["quantity"] = pd.Series([], dtype="string")
    frame = pd.concat([frame, pd.DataFrame({"invoice": [None]})], ignore_index=True)
    with pytest.raises(ContractError) as err:
        validate_clean(frame, TRANSACTIONS)
    message = str(err.value)
    assert "missing columns ['country']" in message
    assert "quantity: expected int64" in message
    assert "invoice:" in message and "nulls" in message
