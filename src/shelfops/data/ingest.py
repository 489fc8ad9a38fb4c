"""Import a retail export into validated parquet, with every rejected row quarantined.

The importer reads CSV or XLSX with the usual header spellings, checks each row against the
contracts in :mod:`shelfops.data.contracts`, and writes:

* ``raw/``: the landing copy of what was read (strings, as in the file),
* ``clean/``: ``transactions.parquet``, ``customers.parquet``, ``products.parquet``,
* ``quarantine/``: every rejected row with its source, row number and reason,
* ``reports/data_quality.json`` and ``.md``: counts that reconcile, completeness, consent
  coverage, duplicates, cancellations, non-product codes, staleness, and the quality gate verdict.

Nothing is half-written: outputs go to a staging folder and replace the previous ones only when the
whole import succeeded and the quality gate passed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from shelfops.data.consent import resolve_consent
from shelfops.data.contracts import (
    CUSTOMERS,
    NON_PRODUCT_CODES,
    PRODUCTS,
    PROMOTIONS,
    TRANSACTIONS,
    Contract,
    validate_clean,
)
from shelfops.settings import QualityThresholds

ProgressFn = Callable[[str], None]


class IngestError(ValueError):
    """The file cannot be imported at all; the message says what to do."""


class QualityGateError(RuntimeError):
    """The data was read but is too dirty to use; ``report`` holds the figures."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class IngestResult:
    """What an import produced."""

    report: dict[str, Any]
    clean: dict[str, Path] = field(default_factory=dict)
    quarantine: Path | None = None
    report_paths: dict[str, Path] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_source(path: Path, contract: Contract, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a CSV or XLSX file into canonical string columns.

    Every cell stays a string (empty when blank) so that validation, not the parser, decides what
    is wrong. Rows the CSV parser cannot split into the header's fields are kept with the reason
    ``malformed row``. Two columns are added: ``_row`` (the 1-based line or sheet row) and
    ``_parse_error``.

    Args:
        path: The file.
        contract: The contract whose columns to map.
        encoding: Text encoding of a CSV file.

    Returns:
        A frame with the contract's columns (missing optional ones blank).

    Raises:
        IngestError: missing file or columns, wrong encoding, empty or truncated file.
    """
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        frame = _read_xlsx(path)
    elif suffix in (".csv", ".txt", ".tsv", ""):
        frame = _read_csv(path, encoding)
    else:
        raise IngestError(f"{path}: unsupported file type {suffix!r}; use CSV or XLSX")
    mapping = contract.header_map([c for c in frame.columns if not c.startswith("_")])
    missing = [c for c in contract.required if c not in mapping.values()]
    if missing:
        found = [c for c in frame.columns if not c.startswith("_")]
        raise IngestError(
            f"{path}: missing required {contract.name} columns {missing}; found {found}. "
            f"Accepted spellings: "
            + "; ".join(
                f"{c.name}: {', '.join((c.name, *c.aliases))}"
                for c in contract.columns
                if c.name in missing
            )
        )
    frame = frame.rename(columns=mapping)
    for col in contract.names:
        if col not in frame.columns:
            frame[col] = ""
    return frame[[*contract.names, "_row", "_parse_error"]]


def _read_xlsx(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise IngestError(
            f"{path}: cannot read the workbook ({exc}); re-export it as XLSX or CSV"
        ) from exc
    if frame.empty:
        raise IngestError(f"{path}: the sheet has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    frame = frame.astype(str)
    frame["_row"] = np.arange(2, len(frame) + 2)
    frame["_parse_error"] = ""
    return frame


def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
    data = path.read_bytes()
    if not data.strip():
        raise IngestError(f"{path}: the file is empty")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: not valid {encoding} text (byte {exc.start}); if this is a Latin-1 or "
            "Windows-1252 export, pass --encoding latin-1 (or cp1252)"
        ) from exc
    except LookupError as exc:
        raise IngestError(f"unknown encoding {encoding!r}") from exc
    text = text.lstrip("\ufeff")
    header_line = text.split("\n", 1)[0].rstrip("\r")
    delimiter = "\t" if header_line.count("\t") > header_line.count(",") else ","
    headers = next(
        iter(
            pd.read_csv(io.StringIO(header_line), sep=delimiter, dtype=str, header=None).itertuples(
                index=False
            )
        )
    )
    headers = [str(h).strip() for h in headers]
    if len(text.split("\n", 1)) < 2 or not text.split("\n", 1)[1].strip():
        raise IngestError(f"{path}: the file has a header but no data rows")
    bad: list[tuple[int | None, str, int]] = []

    def on_invalid(row: Any) -> str:
        bad.append((row.number, row.text, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            # Single-threaded so that rejected rows report their line numbers.
            read_options=pacsv.ReadOptions(use_threads=False, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in headers},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise IngestError(f"{path}: cannot parse as CSV ({exc}); is the file truncated?") from exc
    if bad and not text.endswith("\n"):
        last_line = text.rsplit("\n", 1)[-1]
        if bad[-1][1].strip() == last_line.strip():
            raise IngestError(
                f"{path}: the file looks truncated: its last line has {bad[-1][2]} of "
                f"{len(headers)} fields and no line ending. Re-export or re-download it."
            )
    frame = table.to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    bad_numbers = sorted(n for n, _, _ in bad if n is not None)
    frame["_row"] = _row_numbers(len(frame), bad_numbers)
    frame["_parse_error"] = ""
    if bad:
        malformed = pd.DataFrame({h: [""] * len(bad) for h in frame.columns if h[0] != "_"})
        malformed[frame.columns[0]] = [text_ for _, text_, _ in bad]
        malformed["_row"] = [n if n is not None else -1 for n, _, _ in bad]
        malformed["_parse_error"] = [
            f"malformed row: {k} fields, expected {len(headers)}" for _, _, k in bad
        ]
        frame = pd.concat([frame, malformed], ignore_index=True)
    return frame


def _row_numbers(n_valid: int, bad_numbers: list[int]) -> np.ndarray:
    """Line numbers of valid rows given the (1-based, header = 1) numbers of skipped ones."""
    total = n_valid + len(bad_numbers)
    lines = np.arange(2, total + 2)
    if bad_numbers:
        lines = lines[~np.isin(lines, np.array(bad_numbers))]
    return lines[:n_valid]


# ---------------------------------------------------------------------------------------------
# Row rules
# ---------------------------------------------------------------------------------------------


class _Reasons:
    """Collects per-row rejection reasons without a Python loop over rows."""

    def __init__(self, index: pd.Index) -> None:
        self.reasons = pd.Series("", index=index, dtype=object)

    def add(self, mask: pd.Series | np.ndarray, reason: str) -> None:
        mask = pd.Series(mask, index=self.reasons.index).astype("boolean").fillna(False)
        mask = mask.astype(bool)
        if mask.any():
            current = self.reasons[mask]
            self.reasons[mask] = np.where(current == "", reason, current + "; " + reason)

    @property
    def rejected(self) -> pd.Series:
        return self.reasons != ""


def _parse_dates(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    retry = parsed.isna() & (values != "")
    if retry.any():
        parsed.loc[retry] = pd.to_datetime(values[retry], errors="coerce", format="mixed")
    return parsed.astype("datetime64[us]")


def _normalise_customer_id(values: pd.Series) -> pd.Series:
    ids = values.str.strip().str.replace(r"\.0+$", "", regex=True)
    return ids.mask(ids.isin(["", "nan", "NaN", "None", "NULL", "null"]))


_BOOL_MAP = {
    "true": True,
    "t": True,
    "yes": True,
    "y": True,
    "1": True,
    "false": False,
    "f": False,
    "no": False,
    "n": False,
    "0": False,
}


def _parse_bool(values: pd.Series, name: str, reasons: _Reasons) -> pd.Series:
    lowered = values.str.strip().str.lower()
    parsed = lowered.map(_BOOL_MAP)
    reasons.add((lowered != "") & parsed.isna(), f"{name} is not a boolean")
    return parsed.astype("boolean")


def clean_transactions(raw: pd.DataFrame, as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """Apply the transaction row rules.

    Args:
        raw: Canonical string columns from :func:`read_source`.
        as_of: Events after this moment (plus one day of clock skew) are rejected.

    Returns:
        The typed frame for every row and the rejection reason per row ("" when accepted).
    """
    reasons = _Reasons(raw.index)
    reasons.add(raw["_parse_error"] != "", "malformed row")
    invoice = raw["invoice"].str.strip().str.upper()
    stock_code = raw["stock_code"].str.strip().str.upper()
    reasons.add(invoice == "", "missing invoice")
    reasons.add(stock_code == "", "missing stock_code")
    quantity = pd.to_numeric(raw["quantity"].str.strip(), errors="coerce")
    reasons.add((raw["quantity"].str.strip() != "") & quantity.isna(), "quantity is not a number")
    reasons.add(raw["quantity"].str.strip() == "", "missing quantity")
    reasons.add(quantity.notna() & (quantity != quantity.round()), "quantity is not whole")
    reasons.add(quantity == 0, "zero quantity")
    price = pd.to_numeric(raw["unit_price"].str.strip(), errors="coerce")
    reasons.add(raw["unit_price"].str.strip() == "", "missing unit_price")
    reasons.add((raw["unit_price"].str.strip() != "") & price.isna(), "unit_price is not a number")
    reasons.add(price < 0, "negative unit_price")
    is_product = ~stock_code.isin(NON_PRODUCT_CODES)
    reasons.add(is_product & (price == 0), "zero unit_price on a product line")
    when = _parse_dates(raw["invoice_date"].str.strip())
    reasons.add(raw["invoice_date"].str.strip() == "", "missing invoice_date")
    reasons.add((raw["invoice_date"].str.strip() != "") & when.isna(), "invoice_date is not a date")
    reasons.add(when > as_of + pd.Timedelta(days=1), "invoice_date in the future")
    is_cancel = invoice.str.startswith("C")
    reasons.add(~is_cancel & (quantity < 0), "negative quantity on a sale (not a C invoice)")
    reasons.add(is_cancel & (quantity > 0), "positive quantity on a cancellation")
    typed = pd.DataFrame(
        {
            "invoice": invoice.astype("string"),
            "stock_code": stock_code.astype("string"),
            "description": raw["description"].str.strip().replace("", pd.NA).astype("string"),
            "quantity": quantity,
            "invoice_date": when,
            "unit_price": price,
            "customer_id": _normalise_customer_id(raw["customer_id"]).astype("string"),
            "country": raw["country"].str.strip().replace("", pd.NA).astype("string"),
            "is_cancellation": is_cancel,
            "is_product": is_product,
        }
    )
    ok = ~reasons.rejected
    dup = pd.Series(False, index=typed.index)
    dup[ok] = typed.loc[ok, TRANSACTIONS.names].duplicated(keep="first").to_numpy()
    reasons.add(dup, "duplicate line")
    return typed, reasons.reasons


def clean_customers(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Apply the customer row rules (ids required and unique, booleans and dates parse)."""
    reasons = _Reasons(raw.index)
    reasons.add(raw["_parse_error"] != "", "malformed row")
    ids = _normalise_customer_id(raw["customer_id"])
    reasons.add(ids.isna(), "missing customer_id")
    signup = _parse_dates(raw["signup_date"].str.strip())
    reasons.add((raw["signup_date"].str.strip() != "") & signup.isna(), "signup_date is not a date")
    updated = _parse_dates(raw["consent_updated_at"].str.strip())
    reasons.add(
        (raw["consent_updated_at"].str.strip() != "") & updated.isna(),
        "consent_updated_at is not a date",
    )
    typed = pd.DataFrame(
        {
            "customer_id": ids.astype("string"),
            "region": raw["region"].str.strip().replace("", pd.NA).astype("string"),
            "signup_date": signup,
            "opted_out_sale": _parse_bool(raw["opted_out_sale"], "opted_out_sale", reasons),
            "opted_out_personalization": _parse_bool(
                raw["opted_out_personalization"], "opted_out_personalization", reasons
            ),
            "consent_updated_at": updated,
        }
    )
    dup = ids.notna() & ids.duplicated(keep="first")
    reasons.add(dup, "duplicate customer_id")
    return typed, reasons.reasons


def clean_products(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Apply the product row rules (codes required and unique, numbers and dates parse)."""
    reasons = _Reasons(raw.index)
    reasons.add(raw["_parse_error"] != "", "malformed row")
    code = raw["stock_code"].str.strip().str.upper()
    reasons.add(code == "", "missing stock_code")
    numbers = {}
    for col in ("price", "markdown_count", "inventory_on_hand"):
        text = raw[col].str.strip()
        value = pd.to_numeric(text, errors="coerce")
        reasons.add((text != "") & value.isna(), f"{col} is not a number")
        reasons.add(value < 0, f"negative {col}")
        numbers[col] = value
    dates = {}
    for col in ("launch_date", "discontinue_date"):
        text = raw[col].str.strip()
        dates[col] = _parse_dates(text)
        reasons.add((text != "") & dates[col].isna(), f"{col} is not a date")
    typed = pd.DataFrame(
        {
            "stock_code": code.astype("string"),
            "description": raw["description"].str.strip().replace("", pd.NA).astype("string"),
            "category": raw["category"].str.strip().replace("", pd.NA).astype("string"),
            "price": numbers["price"].astype("float64"),
            "markdown_count": numbers["markdown_count"].round().astype("Int64"),
            "inventory_on_hand": numbers["inventory_on_hand"].round().astype("Int64"),
            "launch_date": dates["launch_date"],
            "discontinue_date": dates["discontinue_date"],
        }
    )
    reasons.add((code != "") & code.duplicated(keep="first"), "duplicate stock_code")
    return typed, reasons.reasons


def clean_promotions(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Apply the promotion row rules (code and Monday week required, counts whole and >= 0).

    Args:
        raw: Canonical string columns from :func:`read_source`.

    Returns:
        The typed frame for every row and the rejection reason per row ("" when accepted).
    """
    reasons = _Reasons(raw.index)
    reasons.add(raw["_parse_error"] != "", "malformed row")
    code = raw["stock_code"].str.strip().str.upper()
    reasons.add(code == "", "missing stock_code")
    week = _parse_dates(raw["week_start"].str.strip())
    reasons.add(raw["week_start"].str.strip() == "", "missing week_start")
    reasons.add((raw["week_start"].str.strip() != "") & week.isna(), "week_start is not a date")
    reasons.add(
        week.notna() & ((week.dt.weekday != 0) | (week != week.dt.normalize())),
        "week_start is not a Monday",
    )
    counts = {}
    for col in ("display_stores", "mailer_stores"):
        text = raw[col].str.strip()
        value = pd.to_numeric(text, errors="coerce")
        reasons.add((text != "") & value.isna(), f"{col} is not a number")
        reasons.add(value < 0, f"negative {col}")
        reasons.add(value.notna() & (value != value.round()), f"{col} is not whole")
        counts[col] = value.fillna(0).round().astype("int64")
    typed = pd.DataFrame(
        {
            "stock_code": code.astype("string"),
            "week_start": week,
            "display_stores": counts["display_stores"],
            "mailer_stores": counts["mailer_stores"],
        }
    )
    ok = ~reasons.rejected
    dup = pd.Series(False, index=typed.index)
    dup[ok] = typed.loc[ok, ["stock_code", "week_start"]].duplicated(keep="first").to_numpy()
    reasons.add(dup, "duplicate stock_code and week_start")
    return typed, reasons.reasons


# ---------------------------------------------------------------------------------------------
# Derivation and consent
# ---------------------------------------------------------------------------------------------


def derive_customers(tx: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """Customers seen in transactions but not in the customers table (no consent record)."""
    sales = tx[tx["customer_id"].notna()]
    first = sales.groupby("customer_id", observed=True)["invoice_date"].min()
    new = first[~first.index.isin(known["customer_id"])]
    return pd.DataFrame(
        {
            "customer_id": pd.array(new.index, dtype="string"),
            "region": pd.array([pd.NA] * len(new), dtype="string"),
            "signup_date": new.to_numpy().astype("datetime64[us]"),
            "opted_out_sale": pd.array([pd.NA] * len(new), dtype="boolean"),
            "opted_out_personalization": pd.array([pd.NA] * len(new), dtype="boolean"),
            "consent_updated_at": pd.Series([pd.NaT] * len(new), dtype="datetime64[us]").to_numpy(),
        }
    )


def derive_products(tx: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """Products sold but absent from the products table, described from their sales."""
    sales = tx[tx["is_product"] & ~tx["is_cancellation"]]
    sales = sales[~sales["stock_code"].isin(known["stock_code"])]
    if sales.empty:
        return known.iloc[0:0].copy()
    ordered = sales.sort_values("invoice_date")
    grouped = ordered.groupby("stock_code", observed=True)
    desc = grouped["description"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else pd.NA)
    out = pd.DataFrame(
        {
            "stock_code": pd.array(grouped.size().index, dtype="string"),
            "description": pd.array(desc.to_numpy(), dtype="string"),
            "category": pd.array(["Unknown"] * grouped.ngroups, dtype="string"),
            "price": grouped["unit_price"].last().to_numpy().astype("float64"),
            "markdown_count": pd.array([pd.NA] * grouped.ngroups, dtype="Int64"),
            "inventory_on_hand": pd.array([pd.NA] * grouped.ngroups, dtype="Int64"),
            "launch_date": grouped["invoice_date"].min().to_numpy().astype("datetime64[us]"),
            "discontinue_date": pd.Series(
                [pd.NaT] * grouped.ngroups, dtype="datetime64[us]"
            ).to_numpy(),
        }
    )
    return out


# ---------------------------------------------------------------------------------------------
# Report and gate
# ---------------------------------------------------------------------------------------------


def _reason_counts(reasons: pd.Series) -> dict[str, int]:
    rejected = reasons[reasons != ""]
    if rejected.empty:
        return {}
    counts = rejected.str.split("; ").explode().value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _table_counts(reasons: pd.Series) -> dict[str, Any]:
    read = len(reasons)
    quarantined = int((reasons != "").sum())
    accepted = read - quarantined
    return {
        "rows_read": read,
        "rows_accepted": accepted,
        "rows_quarantined": quarantined,
        "reconciled": read == accepted + quarantined,
        "quarantine_reasons": _reason_counts(reasons),
    }


def build_report(
    tx: pd.DataFrame,
    tx_reasons: pd.Series,
    customers: pd.DataFrame,
    cust_reasons: pd.Series | None,
    products: pd.DataFrame,
    prod_reasons: pd.Series | None,
    as_of: pd.Timestamp,
    policy: str,
    sources: dict[str, str],
) -> dict[str, Any]:
    """Summarise an import: counts that reconcile, completeness, consent and freshness."""
    clean = tx[tx_reasons == ""]
    product_lines = clean[clean["is_product"]]
    buyers = set(clean["customer_id"].dropna().unique())
    cust_seen = customers[customers["customer_id"].isin(buyers)]
    newest = clean["invoice_date"].max()
    non_product = clean.loc[~clean["is_product"], "stock_code"].value_counts()
    dup_lines = int(tx_reasons.str.contains("duplicate line", regex=False).sum())
    report: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "sources": sources,
        "tables": {
            "transactions": _table_counts(tx_reasons),
            "customers": _table_counts(cust_reasons)
            if cust_reasons is not None
            else {"derived": True, "rows": len(customers)},
            "products": _table_counts(prod_reasons)
            if prod_reasons is not None
            else {"derived": True, "rows": len(products)},
        },
        "date_range": [
            clean["invoice_date"].min().isoformat() if len(clean) else None,
            newest.isoformat() if len(clean) else None,
        ],
        "completeness": {
            col: round(float(clean[col].notna().mean()), 4) if len(clean) else 0.0
            for col in TRANSACTIONS.names
        },
        "customer_id_completeness_product_lines": round(
            float(product_lines["customer_id"].notna().mean()), 4
        )
        if len(product_lines)
        else 0.0,
        "consent": {
            "policy": policy,
            "customers": len(cust_seen),
            "with_consent_record": int(cust_seen["consent_recorded"].sum()),
            "coverage": round(float(cust_seen["consent_recorded"].mean()), 4)
            if len(cust_seen)
            else 0.0,
            "opted_out_sale": int(cust_seen["opted_out_sale"].sum()),
            "opted_out_personalization": int(cust_seen["opted_out_personalization"].sum()),
        },
        "duplicates": {"lines": dup_lines},
        "cancellations": {
            "lines": int(clean["is_cancellation"].sum()),
            "invoices": int(clean.loc[clean["is_cancellation"], "invoice"].nunique()),
            "share_of_lines": round(float(clean["is_cancellation"].mean()), 4)
            if len(clean)
            else 0.0,
        },
        "non_product_lines": {
            "lines": int(non_product.sum()),
            "codes": {str(k): int(v) for k, v in non_product.items()},
        },
        "entities": {
            "products": int(product_lines["stock_code"].nunique()),
            "customers": len(buyers),
            "invoices": int(clean["invoice"].nunique()),
        },
        "staleness_days": round((as_of - newest).total_seconds() / 86400, 1)
        if len(clean)
        else None,
    }
    return report


def apply_gate(report: dict[str, Any], thresholds: QualityThresholds) -> dict[str, Any]:
    """Judge a report against the thresholds; returns ``{"passed": bool, "failures": [...]}``."""
    failures: list[str] = []
    tx = report["tables"]["transactions"]
    share = tx["rows_quarantined"] / max(tx["rows_read"], 1)
    if share > thresholds.max_quarantine_share:
        failures.append(
            f"{share:.1%} of transaction rows quarantined "
            f"(limit {thresholds.max_quarantine_share:.1%})"
        )
    if tx["rows_accepted"] < thresholds.min_rows:
        failures.append(f"only {tx['rows_accepted']} accepted rows (need {thresholds.min_rows})")
    completeness = report["customer_id_completeness_product_lines"]
    if completeness < thresholds.min_customer_id_completeness:
        failures.append(
            f"{completeness:.1%} of product lines carry a customer id "
            f"(need {thresholds.min_customer_id_completeness:.1%})"
        )
    cancel = report["cancellations"]["share_of_lines"]
    if cancel > thresholds.max_cancellation_share:
        failures.append(
            f"{cancel:.1%} of lines are cancellations "
            f"(limit {thresholds.max_cancellation_share:.1%})"
        )
    stale = report["staleness_days"]
    if (
        thresholds.max_staleness_days is not None
        and stale is not None
        and stale > thresholds.max_staleness_days
    ):
        failures.append(
            f"newest event is {stale:.0f} days old (limit {thresholds.max_staleness_days} days)"
        )
    return {"passed": not failures, "failures": failures, "thresholds": thresholds.model_dump()}


def report_markdown(report: dict[str, Any]) -> str:
    """A readable summary of a data-quality report."""
    tx = report["tables"]["transactions"]
    gate = report.get("gate", {})
    lines = [
        "# Data quality",
        "",
        f"- As of: {report['as_of']}; events {report['date_range'][0]} to {report['date_range'][1]}"
        f" (staleness {report['staleness_days']} days)",
        f"- Transactions: {tx['rows_read']:,} read = {tx['rows_accepted']:,} accepted + "
        f"{tx['rows_quarantined']:,} quarantined "
        f"({'reconciled' if tx['reconciled'] else 'DOES NOT RECONCILE'})",
    ]
    for reason, count in tx["quarantine_reasons"].items():
        lines.append(f"  - {reason}: {count:,}")
    for name in ("customers", "products", "promotions"):
        if name not in report["tables"]:
            continue
        t = report["tables"][name]
        if t.get("derived"):
            lines.append(f"- {name.capitalize()}: derived from transactions ({t['rows']:,} rows)")
        else:
            lines.append(
                f"- {name.capitalize()}: {t['rows_read']:,} read = "
                f"{t['rows_accepted']:,} accepted + {t['rows_quarantined']:,} quarantined"
            )
    c = report["consent"]
    lines += [
        f"- Entities: {report['entities']['products']:,} products, "
        f"{report['entities']['customers']:,} customers, "
        f"{report['entities']['invoices']:,} invoices",
        f"- Customer id on product lines: {report['customer_id_completeness_product_lines']:.1%}",
        f"- Consent ({c['policy']}): {c['coverage']:.1%} of buying customers have a record; "
        f"{c['opted_out_sale']:,} opted out of sale, {c['opted_out_personalization']:,} of "
        "personalization",
        f"- Duplicate lines: {report['duplicates']['lines']:,}; cancellations: "
        f"{report['cancellations']['lines']:,} lines in {report['cancellations']['invoices']:,} "
        f"invoices; non-product lines: {report['non_product_lines']['lines']:,}",
        "",
        f"**Quality gate: {'PASSED' if gate.get('passed') else 'FAILED'}**",
    ]
    lines += [f"- {f}" for f in gate.get("failures", [])]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------------------------


def _quarantine_frame(
    raw: pd.DataFrame, reasons: pd.Series, table: str, source: Path
) -> pd.DataFrame:
    rejected = raw.loc[reasons != ""].copy()
    rejected.insert(0, "reason", reasons[reasons != ""].to_numpy())
    rejected.insert(0, "source", str(source))
    rejected.insert(0, "table", table)
    rejected = rejected.rename(columns={"_row": "row"}).drop(columns="_parse_error")
    return rejected


def ingest(
    transactions_path: Path,
    root: Path,
    *,
    customers_path: Path | None = None,
    products_path: Path | None = None,
    promotions_path: Path | None = None,
    policy: str = "opt_out",
    thresholds: QualityThresholds | None = None,
    as_of: dt.datetime | None = None,
    encoding: str = "utf-8",
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Import a retail export into ``root`` (clean, quarantine, raw landing copy and report).

    Args:
        transactions_path: CSV or XLSX in the 8-column online-retail schema.
        root: The ShelfOps home folder (``Settings().root``).
        customers_path: Optional customers file; derived from transactions when absent.
        products_path: Optional products file; derived from transactions when absent.
        promotions_path: Optional weekly promotions file (displays and mailers per product).
        policy: Consent policy for customers without a consent record.
        thresholds: Quality gate thresholds (defaults from the environment).
        as_of: The moment staleness is measured against (default: now).
        encoding: Text encoding of CSV files.
        progress: Called with a short message as each stage starts.

    Returns:
        The report and where everything was written.

    Raises:
        IngestError: the file cannot be read (nothing is written).
        QualityGateError: the data is too dirty; the report is written, the clean tables are not
            replaced.
    """
    thresholds = thresholds or QualityThresholds()
    as_of_ts = pd.Timestamp(as_of or dt.datetime.now()).tz_localize(None)
    say = progress or (lambda _msg: None)

    say(f"reading {transactions_path.name}")
    raw_tx = read_source(transactions_path, TRANSACTIONS, encoding)
    say("validating transactions")
    tx, tx_reasons = clean_transactions(raw_tx, as_of_ts)
    sources = {"transactions": str(transactions_path)}
    quarantine = [_quarantine_frame(raw_tx, tx_reasons, "transactions", transactions_path)]
    accepted = tx[tx_reasons == ""].copy()
    accepted["quantity"] = accepted["quantity"].astype("int64")

    cust_reasons = prod_reasons = None
    raw_cust = raw_prod = None
    if customers_path is not None:
        say(f"reading {customers_path.name}")
        raw_cust = read_source(customers_path, CUSTOMERS, encoding)
        cust, cust_reasons = clean_customers(raw_cust)
        quarantine.append(_quarantine_frame(raw_cust, cust_reasons, "customers", customers_path))
        customers = cust[cust_reasons == ""]
        sources["customers"] = str(customers_path)
    else:
        customers = derive_customers(accepted, pd.DataFrame({"customer_id": []}))
    customers = pd.concat([customers, derive_customers(accepted, customers)], ignore_index=True)
    customers = resolve_consent(customers, policy)

    if products_path is not None:
        say(f"reading {products_path.name}")
        raw_prod = read_source(products_path, PRODUCTS, encoding)
        prod, prod_reasons = clean_products(raw_prod)
        quarantine.append(_quarantine_frame(raw_prod, prod_reasons, "products", products_path))
        products = prod[prod_reasons == ""]
        sources["products"] = str(products_path)
    else:
        products = derive_products(accepted, pd.DataFrame({"stock_code": []}))
    products = pd.concat([products, derive_products(accepted, products)], ignore_index=True)
    products["category"] = products["category"].fillna("Unknown")

    promotions = prom_reasons = raw_prom = None
    if promotions_path is not None:
        say(f"reading {promotions_path.name}")
        raw_prom = read_source(promotions_path, PROMOTIONS, encoding)
        prom, prom_reasons = clean_promotions(raw_prom)
        quarantine.append(_quarantine_frame(raw_prom, prom_reasons, "promotions", promotions_path))
        promotions = prom[prom_reasons == ""].reset_index(drop=True)
        sources["promotions"] = str(promotions_path)

    say("checking contracts and quality gate")
    report = build_report(
        tx, tx_reasons, customers, cust_reasons, products, prod_reasons, as_of_ts, policy, sources
    )
    if prom_reasons is not None:
        report["tables"]["promotions"] = _table_counts(prom_reasons)
    report["gate"] = apply_gate(report, thresholds)
    validate_clean(accepted, TRANSACTIONS)
    validate_clean(customers, CUSTOMERS)
    validate_clean(products, PRODUCTS)
    if promotions is not None:
        validate_clean(promotions, PROMOTIONS)

    staging = root / f".staging-{uuid.uuid4().hex[:8]}"
    try:
        say("writing parquet")
        out: dict[str, dict[str, pd.DataFrame]] = {
            "clean": {
                "transactions": accepted.reset_index(drop=True),
                "customers": customers.reset_index(drop=True),
                "products": products.reset_index(drop=True),
            },
            "raw": {"transactions": raw_tx.drop(columns="_parse_error")},
            "quarantine": {"quarantine": pd.concat(quarantine, ignore_index=True)},
        }
        if raw_cust is not None:
            out["raw"]["customers"] = raw_cust.drop(columns="_parse_error")
        if raw_prod is not None:
            out["raw"]["products"] = raw_prod.drop(columns="_parse_error")
        if promotions is not None and raw_prom is not None:
            out["clean"]["promotions"] = promotions
            out["raw"]["promotions"] = raw_prom.drop(columns="_parse_error")
        for folder, frames in out.items():
            (staging / folder).mkdir(parents=True)
            for name, frame in frames.items():
                frame.to_parquet(staging / folder / f"{name}.parquet", index=False)
        (staging / "reports").mkdir()
        (staging / "reports" / "data_quality.json").write_text(json.dumps(report, indent=2))
        (staging / "reports" / "data_quality.md").write_text(report_markdown(report))
        reports_dir = root / "reports"
        reports_dir.mkdir(parents=True, exist_ok=True)
        report_paths = {
            "json": reports_dir / "data_quality.json",
            "markdown": reports_dir / "data_quality.md",
        }
        for path in report_paths.values():
            (staging / "reports" / path.name).replace(path)
        if not report["gate"]["passed"]:
            rejected = reports_dir / "rejected_quarantine.parquet"
            (staging / "quarantine" / "quarantine.parquet").replace(rejected)
            raise QualityGateError(
                "data quality gate failed: "
                + "; ".join(report["gate"]["failures"])
                + f". Rejected rows: {rejected}. Nothing in {root / 'clean'} was replaced.",
                report,
            )
        for folder in ("clean", "raw", "quarantine"):
            target = root / folder
            if target.exists():
                shutil.rmtree(target)
            (staging / folder).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    clean = {name: root / "clean" / f"{name}.parquet" for name in out["clean"]}
    return IngestResult(
        report=report,
        clean=clean,
        quarantine=root / "quarantine" / "quarantine.parquet",
        report_paths=report_paths,
    )


def load_clean(root: Path) -> dict[str, pd.DataFrame]:
    """Read the clean tables written by :func:`ingest` (``promotions`` only when imported).

    Raises:
        FileNotFoundError: with the command to run when nothing has been ingested yet.
    """
    paths = {
        name: root / "clean" / f"{name}.parquet"
        for name in ("transactions", "customers", "products")
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no clean data at {missing}; run `shelfops data ingest` first")
    tables = {name: pd.read_parquet(path) for name, path in paths.items()}
    promotions = root / "clean" / "promotions.parquet"
    if promotions.exists():  # optional: planned promotions, when the retailer provides them
        tables["promotions"] = pd.read_parquet(promotions)
    return tables
