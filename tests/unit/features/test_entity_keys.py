"""The SQLite reader's entity keys are Feast's, byte for byte."""

from __future__ import annotations

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from shelfops.features.sqlite_online import _key_head, entity_keys


@pytest.mark.parametrize("join_key", ["customer_id", "stock_code"])
def test_entity_keys_equal_feast_serialization(join_key: str) -> None:
    """ASCII, empty, non-ASCII and long ids serialize exactly as Feast's own serializer does."""
    ids = ["13450", "", "85123A", "kunde-äöü-中文", "x" * 300]
    expected = [
        serialize_entity_key(
            EntityKey(join_keys=[join_key], entity_values=[Value(string_val=i)]),
            entity_key_serialization_version=3,
        )
        for i in ids
    ]
    assert _key_head(join_key, 3) is not None  # the fast layout was recognised
    assert entity_keys(join_key, ids, 3) == expected


def test_another_feast_layout_falls_back_to_feast_for_every_key(monkeypatch) -> None:
    """If Feast's bytes stop matching the head + length + value layout, Feast builds each key."""
    import shelfops.features.sqlite_online as sqlite_online

    def other_layout(key: EntityKey, entity_key_serialization_version: int = 3) -> bytes:
        return b"v9:" + key.entity_values[0].string_val.encode()[::-1]

    monkeypatch.setattr(sqlite_online, "serialize_entity_key", other_layout)
    _key_head.cache_clear()
    try:
        assert _key_head("customer_id", 3) is None
        assert entity_keys("customer_id", ["13450", "ab"], 3) == [b"v9:05431", b"v9:ba"]
    finally:
        _key_head.cache_clear()
