"""CCPA right to be forgotten: remove a customer everywhere ShelfOps keeps data about them.

``forget_customer`` rewrites every parquet and CSV file under the ShelfOps home that has a
customer id column (raw landing copies and generated exports, clean tables, quarantine, feature
tables, prediction and feedback logs), deletes the customer's online-store records, and appends
an audit record saying who asked, when, and how many rows were removed where. It never records
the removed data itself.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _data_files(root: Path) -> Iterator[Path]:
    for pattern in ("*.parquet", "*.csv"):
        for path in sorted(root.rglob(pattern)):
            if "bentoml" in path.parts or path.name.startswith("."):
                continue
            yield path


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
