"""CCPA right to be forgotten: remove a customer everywhere ShelfOps keeps data about them.

``forget_customer`` rewrites every parquet and CSV file under the ShelfOps home that has a
customer id column (raw landing copies and generated exports, clean tables, quarantine, feature
tables, prediction and feedback logs), removes the customer from every JSON file (the load-test
sample, report data) and from the example sections of HTML reports, deletes the customer's
online-store records, and appends an audit record saying who asked, when, and how many rows were
removed where. It never records the removed data itself. The model store is left alone: models
hold item statistics and weights, not customer records (retraining after a forget request is
what removes a customer's influence on them).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from shelfops.data.contracts import CUSTOMERS, TRANSACTIONS
from shelfops.data.parquet import write_parquet_us

#: Every spelling of the customer id column that a stored file may use.
_ID_COLUMNS = frozenset(
    spelling
    for contract in (TRANSACTIONS, CUSTOMERS)
    for col in contract.columns
    if col.name == "customer_id"
    for spelling in (col.name, *col.aliases)
)


@dataclass(frozen=True)
class ForgetResult:
    """What a forget request removed."""

    customer_id: str
    removed: dict[str, int]
    audit_record: dict[str, object]


def _id_column(columns: list[str]) -> str | None:
    for col in columns:
        if col in _ID_COLUMNS:
            return col
    return None


def _data_files(root: Path, patterns: tuple[str, ...] = ("*.parquet", "*.csv")) -> Iterator[Path]:
    for pattern in patterns:
        for path in sorted(root.rglob(pattern)):
            if "bentoml" in path.parts or path.name.startswith("."):
                continue
            yield path


def _without(value: Any, customer_id: str) -> tuple[Any, int]:
    """A JSON value without the customer.

    Removes list items equal to the id, keys equal to it, and records whose ``customer_id`` (any
    spelling) is it.
    """
    if isinstance(value, list):
        out, removed = [], 0
        for item in value:
            if str(item).strip() == customer_id and not isinstance(item, (dict, list)):
                removed += 1
                continue
            if isinstance(item, dict) and any(
                str(item.get(col, "")).strip() == customer_id for col in _ID_COLUMNS
            ):
                removed += 1
                continue
            kept, n = _without(item, customer_id)
            out.append(kept)
            removed += n
        return out, removed
    if isinstance(value, dict):
        out_d, removed = {}, 0
        for key, item in value.items():
            if str(key) == customer_id:
                removed += 1
                continue
            kept, n = _without(item, customer_id)
            out_d[key] = kept
            removed += n
        return out_d, removed
    return value, 0


def _forget_in_json(path: Path, customer_id: str) -> int:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return 0
    kept, removed = _without(doc, customer_id)
    if removed:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(kept), encoding="utf-8")
        tmp.replace(path)
    return removed


def _token(customer_id: str) -> re.Pattern[str]:
    """The id as a whole token (not part of a longer id or number)."""
    return re.compile(rf"(?<![\w.-]){re.escape(customer_id)}(?![\w-]|\.\d)")


def _forget_in_text(path: Path, customer_id: str) -> int:
    """Remove a customer from a text report or log.

    HTML reports lose the customer's examples; any other mention of the id is redacted.
    """
    from shelfops.reports.html import forget_customer_in_report

    removed = forget_customer_in_report(path, customer_id) if path.suffix == ".html" else 0
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return removed
    redacted, n = _token(customer_id).subn("[forgotten customer]", text)
    if n:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(redacted, encoding="utf-8")
        tmp.replace(path)
    return removed + n


def _normalise(ids: pd.Series) -> pd.Series:
    return ids.astype("string").str.strip().str.replace(r"\.0+$", "", regex=True)


def _forget_in_file(path: Path, customer_id: str) -> int:
    if path.suffix == ".parquet":
        column = _id_column(pq.read_schema(path).names)
        if column is None:
            return 0
        frame = pd.read_parquet(path)
    else:
        header = pd.read_csv(path, nrows=0).columns.tolist()
        column = _id_column(header)
        if column is None:
            return 0
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    hit = (_normalise(frame[column]) == customer_id).fillna(False).to_numpy()
    removed = int(hit.sum())
    if removed:
        kept = frame.loc[~hit]
        tmp = path.with_name(f".{path.name}.tmp")
        if path.suffix == ".parquet":
            write_parquet_us(kept, tmp)
        else:
            kept.to_csv(tmp, index=False)
        tmp.replace(path)
    return removed


def forget_customer(
    root: Path,
    customer_id: str,
    audit_log: Path,
    *,
    actor: str | None = None,
    online_delete: Callable[[str], int] | None = None,
) -> ForgetResult:
    """Remove a customer from every dataset under ``root`` and the online store.

    Args:
        root: The ShelfOps home.
        customer_id: The customer to forget.
        audit_log: Append-only JSON-lines audit file.
        actor: Who asked (default: the OS user).
        online_delete: Deletes the customer's online-store records and returns how many.

    Returns:
        Counts of removed rows per file (relative path) and the audit record written.
    """
    customer_id = str(customer_id).strip()
    if not customer_id:
        raise ValueError("a customer id is required")
    removed: dict[str, int] = {}
    for path in _data_files(root):
        count = _forget_in_file(path, customer_id)
        if count:
            removed[str(path.relative_to(root))] = count
    for path in _data_files(root, ("*.json",)):  # load-test sample, report data
        count = _forget_in_json(path, customer_id)
        if count:
            removed[str(path.relative_to(root))] = count
    for path in _data_files(root, ("*.html", "*.md", "*.txt", "*.log", "*.jsonl")):
        if path == audit_log:
            continue  # the audit log names who was forgotten, by design
        count = _forget_in_text(path, customer_id)
        if count:
            removed[str(path.relative_to(root))] = count
    if online_delete is not None:
        removed["online_store"] = online_delete(customer_id)
    record: dict[str, object] = {
        "event": "forget_customer",
        "customer_id": customer_id,
        "actor": actor or getpass.getuser(),
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "removed": removed,
        "total_rows_removed": sum(removed.values()),
    }
    audit_log.parent.mkdir(parents=True, exist_ok=True)
    with audit_log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return ForgetResult(customer_id, removed, record)
