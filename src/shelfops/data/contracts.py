"""Data contracts for the three retail tables.

Transactions follow the common 8-column online-retail export so a retailer can bring its own file.
Customers and products are optional on import and derived from transactions when absent.

A contract names each canonical column, its type, whether it may be null, and the header spellings
importers accept. Row-level rules live in :mod:`shelfops.data.ingest`, where each rejected row
gets a
reason; :func:`validate_clean` checks a finished table against its contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Column:
    """One canonical column of a contract."""

    name: str
    dtype: str  # "string", "int64", "float64", "datetime", "bool"
    nullable: bool
    aliases: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Contract:
    """A table's columns, in order."""

    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Canonical column names in order."""
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        """Columns a source file must provide (non-nullable ones)."""
        return [c.name for c in self.columns if not c.nullable]

    def header_map(self, headers: list[str]) -> dict[str, str]:
        """Map a file's headers onto canonical names.

        Matching ignores case, spaces, underscores and dashes, so ``InvoiceNo``, ``Invoice`` and
        ``invoice_no`` all map to ``invoice``.

        Args:
            headers: Column names as found in the file.

        Returns:
            ``{file_header: canonical_name}`` for every recognised header.
        """
        lookup: dict[str, str] = {}
        for col in self.columns:
            for spelling in (col.name, *col.aliases):
                lookup[_squash(spelling)] = col.name
        mapping: dict[str, str] = {}
        for header in headers:
            canonical = lookup.get(_squash(header))
            if canonical is not None and canonical not in mapping.values():
                mapping[header] = canonical
        return mapping


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


TRANSACTIONS = Contract(
    "transactions",
    (
        Column(
            "invoice",
            "string",
            False,
            ("InvoiceNo", "Invoice", "invoice_no", "order_id"),
            "Invoice number; a leading C marks a cancellation.",
        ),
        Column(
            "stock_code",
            "string",
            False,
            ("StockCode", "sku", "product_code"),
            "Product code, or a non-product code such as POST or M.",
        ),
        Column("description", "string", True, ("Description", "product_name"), "Product text."),
        Column(
            "quantity", "int64", False, ("Quantity", "qty"), "Units; negative on cancellations."
        ),
        Column(
            "invoice_date",
            "datetime",
            False,
            ("InvoiceDate", "order_date", "date"),
            "When the invoice was issued.",
        ),
        Column("unit_price", "float64", False, ("UnitPrice", "Price"), "Price per unit paid."),
        Column(
            "customer_id",
            "string",
            True,
            ("CustomerID", "Customer ID", "customer"),
            "Customer id; empty for guest checkouts.",
        ),
        Column("country", "string", True, ("Country",), "Customer country."),
    ),
)

CUSTOMERS = Contract(
    "customers",
    (
        Column("customer_id", "string", False, ("CustomerID", "Customer ID", "id")),
        Column("region", "string", True, ("state", "Region", "State"), "Region or US state."),
        Column("signup_date", "datetime", True, ("SignupDate", "created_at")),
        Column(
            "opted_out_sale",
            "bool",
            True,
            ("do_not_sell", "OptedOutSale"),
            "CCPA: opted out of sale/sharing. Null means no consent record.",
        ),
        Column(
            "opted_out_personalization",
            "bool",
            True,
            ("OptedOutPersonalization",),
            "Opted out of personalization. Null means no consent record.",
        ),
        Column("consent_updated_at", "datetime", True, ("ConsentUpdatedAt",)),
    ),
)

PRODUCTS = Contract(
    "products",
    (
        Column("stock_code", "string", False, ("StockCode", "sku", "product_code", "code")),
        Column("description", "string", True, ("Description", "name")),
        Column("category", "string", True, ("Category",)),
        Column("price", "float64", True, ("list_price", "Price"), "Current list price."),
        Column(
            "markdown_count",
            "int64",
            True,
            ("markdowns",),
            "Clearance markdowns taken so far (not promotions).",
        ),
        Column("inventory_on_hand", "int64", True, ("inventory", "stock_on_hand")),
        Column("launch_date", "datetime", True, ("LaunchDate",)),
        Column(
            "discontinue_date",
            "datetime",
            True,
            ("DiscontinueDate",),
            "Last day on sale; null while still in the range.",
        ),
    ),
)

PROMOTIONS = Contract(
    "promotions",
    (
        Column("stock_code", "string", False, ("StockCode", "sku", "product_code", "product_id")),
        Column(
            "week_start",
            "datetime",
            False,
            ("week", "WeekStart"),
            "Monday of the promoted week (known ahead: planned promotions).",
        ),
        Column(
            "display_stores",
            "int64",
            True,
            ("displays", "on_display"),
            "Stores with an in-store display of the product that week.",
        ),
        Column(
            "mailer_stores",
            "int64",
            True,
            ("mailers", "in_mailer"),
            "Stores whose mailer features the product that week.",
        ),
    ),
)

CONTRACTS = {c.name: c for c in (TRANSACTIONS, CUSTOMERS, PRODUCTS, PROMOTIONS)}

#: Codes in retail exports that are not products: postage, fees, manual adjustments, discounts.
NON_PRODUCT_CODES = frozenset(
    {
        "POST",
        "DOT",
        "M",
        "MANUAL",
        "BANK CHARGES",
        "AMAZONFEE",
        "D",
        "C2",
        "CRUK",
        "PADS",
        "S",
        "B",
        "ADJUST",
        "ADJUST2",
        "TEST001",
        "TEST002",
        "GIFT",
    }
)

_PANDAS_DTYPES = {
    "string": "string",
    "int64": "int64",
    "float64": "float64",
    "bool": "boolean",
}


class ContractError(ValueError):
    """A table does not satisfy its contract."""


def validate_clean(df: pd.DataFrame, contract: Contract) -> None:
    """Check that a clean table has exactly the contract's columns, types and null rules.

    Args:
        df: The table to check.
        contract: Its contract.

    Raises:
        ContractError: naming every violated rule.
    """
    problems: list[str] = []
    missing = [n for n in contract.names if n not in df.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    for col in contract.columns:
        if col.name not in df.columns:
            continue
        series = df[col.name]
        if col.dtype == "datetime":
            if not pd.api.types.is_datetime64_any_dtype(series):
                problems.append(f"{col.name}: expected datetime, got {series.dtype}")
        elif col.dtype == "string":
            if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
                problems.append(f"{col.name}: expected string, got {series.dtype}")
        elif col.dtype in ("int64", "float64"):
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                problems.append(f"{col.name}: expected {col.dtype}, got {series.dtype}")
        elif col.dtype == "bool" and not pd.api.types.is_bool_dtype(series):
            problems.append(f"{col.name}: expected bool, got {series.dtype}")
        if not col.nullable and series.isna().any():
            problems.append(f"{col.name}: {int(series.isna().sum())} nulls in a required column")
    if problems:
        raise ContractError(f"{contract.name} violates its contract: " + "; ".join(problems))


def empty_frame(contract: Contract) -> pd.DataFrame:
    """An empty table with the contract's columns and types."""
    data = {}
    for col in contract.columns:
        if col.dtype == "datetime":
            data[col.name] = pd.Series([], dtype="datetime64[us]")
        else:
            data[col.name] = pd.Series([], dtype=_PANDAS_DTYPES[col.dtype])
    return pd.DataFrame(data)
