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
