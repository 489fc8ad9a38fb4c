"""Feast's SQLite online tables, read and edited over a connection of ShelfOps' own.

Feast writes the local online store (``feast materialize``); this module reads the rows it wrote
on the request path. Feast's own ``SqliteOnlineStore.online_read`` returns each entity's event
time too, and its connection converts every stored row's timestamp text to a datetime (it parses
declared ``timestamp`` columns), which no ShelfOps read uses: for a batch of 64 customers, 12
stored rows each, that conversion was 2.2 ms of a 4.0 ms read (``docs/benchmarks.md``). Here the
same rows are selected without it. Table names and entity keys come from Feast's own helpers
(``compute_table_id``, ``serialize_entity_key``), so the layout is Feast's, not a copy; an
integration test checks every read against ``get_online_features``.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from feast import FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

Decode = Callable[[Value], Any]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def entity_keys(join_key: str, ids: Sequence[str], version: int) -> list[bytes]:
    """Feast's stored form of string entity keys (the online tables' ``entity_key``).

    Args:
        join_key: The entity's join key.
        ids: Its values.
        version: ``entity_key_serialization_version`` of the repository configuration.
    """
    head = _key_head(join_key, version)
    if head is None:
        return [
            serialize_entity_key(
                EntityKey(join_keys=[join_key], entity_values=[Value(string_val=i)]),
                entity_key_serialization_version=version,
            )
            for i in ids
        ]
    pack = struct.Struct("<I").pack
    return [head + pack(len(b)) + b for b in (i.encode() for i in ids)]


@functools.cache
def _key_head(join_key: str, version: int) -> bytes | None:
    """The bytes Feast puts before a string key's length and value, if that is its layout.

    Feast's serializer builds a protobuf message per key (about 6 us). One string key is
    ``head + length + utf-8 value``; the head is found from Feast's own serialization of an
    empty value and kept only if Feast's serialization of two probes agrees with it, so a
    Feast release with another layout falls back to calling Feast for every key.
    """

    def feast(value: str) -> bytes:
        key = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
        return serialize_entity_key(key, entity_key_serialization_version=version)

    empty = feast("")
    pack = struct.Struct("<I").pack
    if not empty.endswith(pack(0)):
        return None
    head = empty[: -len(pack(0))]
    for probe in ("13450", "kund-\u00e9\u00e8-\u4e2d"):
        raw = probe.encode()
        if feast(probe) != head + pack(len(raw)) + raw:
            return None
    return head


class SqliteOnlineTables:
    """Reads (and deletes) rows of Feast's SQLite online store, on its own connection.

    The connection is opened on first use. With a deadline, a read waits for a writer's lock no
    longer than the deadline (``busy_timeout``) and a statement still running past it is
    interrupted; both raise ``sqlite3.OperationalError`` ("locked" or "interrupted"), which
    :class:`~shelfops.features.store.FeatureRepo` reports as a timeout.
    """

    def __init__(self, config: RepoConfig, read_timeout_s: float | None = None) -> None:
        """Bind to a repository configuration with a SQLite online store.

        Args:
            config: The Feast configuration (its online store's path and project).
            read_timeout_s: Deadline of one read; None waits as long as SQLite's default.
        """
        self.config = config
        self.path = Path(SqliteOnlineStore._get_db_path(config))
        self.read_timeout_s = read_timeout_s
        self._deadline = threading.local()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def table(self, view: FeatureView) -> str:
        """The name of the online table Feast materializes ``view`` into."""
        versioned = self.config.registry.enable_online_feature_view_versioning
        return compute_table_id(self.config.project, view, versioned)

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            return conn
        with self._lock:
            if self._conn is None:
                # Read-only: a missing store is an error to report, not an empty file to create.
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
                if self.read_timeout_s is not None:
                    deadline = self._deadline

                    def past_deadline() -> int:
                        at = getattr(deadline, "at", None)
                        return int(at is not None and time.monotonic() > at)

                    conn.execute(f"PRAGMA busy_timeout = {max(1, int(self.read_timeout_s * 1000))}")
                    conn.set_progress_handler(past_deadline, 1000)
                self._conn = conn
            return self._conn

    def read(
        self,
        view: FeatureView,
        keys: list[bytes],
        names: Sequence[str],
        decode: Decode,
    ) -> dict[str, list[Any]]:
        """The stored values of ``names`` for each key, in key order (None where none is stored).

        Args:
            view: The feature view (its online table).
            keys: Entity keys from :func:`entity_keys`.
            names: Feature names of the view.
            decode: Turns one stored ``Value`` into a Python value.

        Returns:
            One list per name, one value per key.
        """
        conn = self._connection()
        if self.read_timeout_s is not None:
            self._deadline.at = time.monotonic() + self.read_timeout_s
        try:
            rows = conn.execute(
                f"SELECT entity_key, feature_name, value FROM {_quoted(self.table(view))} "
                f"WHERE entity_key IN ({','.join('?' * len(keys))})",
                keys,
            ).fetchall()
        finally:
            self._deadline.at = None
        stored: dict[bytes, dict[str, bytes]] = {}
        for key, name, blob in rows:
            cells = stored.get(key)
            if cells is None:
                cells = stored[key] = {}
            cells[name] = blob
        value = Value()
        out: dict[str, list[Any]] = {}
        for name in names:
            column: list[Any] = []
            for key in keys:
                blob = stored.get(key, {}).get(name)
                if blob is None:
                    column.append(None)
                else:
                    value.ParseFromString(blob)
                    column.append(decode(value))
            out[name] = column
        return out

    def delete(self, views: Sequence[FeatureView], key: bytes) -> int:
        """Delete one entity's rows from the views' tables that exist; the rows removed."""
        removed = 0
        with sqlite3.connect(self.path) as conn:
            for view in views:
                table = self.table(view)
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = ?", (table,)
                ).fetchone()
                if exists:
                    cur = conn.execute(f"DELETE FROM {_quoted(table)} WHERE entity_key = ?", (key,))
                    removed += cur.rowcount
        return removed
