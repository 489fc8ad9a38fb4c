"""Parquet writing that every reader of ShelfOps files can take."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _us_table(frame: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [
        pa.field(f.name, pa.timestamp("us", tz=f.type.tz), f.nullable)
        if pa.types.is_timestamp(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def write_parquet_us(frame: pd.DataFrame, path: Path) -> None:
    """Write parquet with microsecond timestamps (DuckDB, the offline store, cannot cast ns)."""
    pq.write_table(_us_table(frame), path)


def write_parquet_parts(frames: Iterable[pd.DataFrame], path: Path) -> None:
    """Write frames with the same columns as one parquet file, one part at a time.

    Only one part is in memory at once; timestamps are written in microseconds, as by
    :func:`write_parquet_us`. Nothing is written when there is no part.

    Args:
        frames: The parts (the first one fixes the schema).
        path: Target file.
    """
    writer: pq.ParquetWriter | None = None
    try:
        for frame in frames:
            table = _us_table(frame)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
