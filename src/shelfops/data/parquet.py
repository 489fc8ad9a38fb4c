"""Parquet writing that every reader of ShelfOps files can take."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_us(frame: pd.DataFrame, path: Path) -> None:
    """Write parquet with microsecond timestamps (DuckDB, the offline store, cannot cast ns)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [
        pa.field(f.name, pa.timestamp("us", tz=f.type.tz), f.nullable)
        if pa.types.is_timestamp(f.type)
        else f
        for f in table.schema
    ]
    pq.write_table(table.cast(pa.schema(fields)), path)
