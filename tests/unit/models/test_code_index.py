"""The compiled code table answers exactly what a dict of the catalogue answers."""

from __future__ import annotations

import random
import string

from shelfops.models.code_index import CodeIndex


def _dict_rows(catalogue: list[str], codes: list[object]) -> list[int]:
    index = {c: i for i, c in enumerate(catalogue)}  # a later duplicate wins
    return [index.get(c if isinstance(c, str) else str(c), -1) for c in codes]


def test_edge_codes_map_like_a_dict() -> None:
    """Empty, non-ASCII, long, duplicate, prefix and NUL-holding codes; ints as their text."""
    catalogue = ["85123A", "", "kunde-äöü", "X" * 300, "22", "85123A", "中文", "8512", "a\0b"]
    queries: list[object] = [*catalogue, "nope", "85123", "85123AB", 22, "ä", "X" * 299, "a"]
    assert CodeIndex(catalogue).rows(queries).tolist() == _dict_rows(catalogue, queries)
    texts = [c for c in queries if isinstance(c, str) and "\0" not in c]  # the one-pass split
    assert CodeIndex(catalogue).rows(texts).tolist() == _dict_rows(catalogue, texts)
    assert CodeIndex(catalogue).rows([]).tolist() == []
    assert CodeIndex([]).rows(["a", ""]).tolist() == [-1, -1]


def test_a_large_random_catalogue_maps_like_a_dict() -> None:
    """20,000 random codes (a table where probes chain) and 5,000 lookups, half unknown."""
    rng = random.Random(3)
    alphabet = string.ascii_uppercase + string.digits + "é"
    catalogue = ["".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(20_000)]
    known = rng.choices(catalogue, k=2_500)
    unknown = ["".join(rng.choices(alphabet, k=rng.randint(1, 13))) for _ in range(2_500)]
    queries: list[object] = [*known, *unknown]
    rng.shuffle(queries)
    assert CodeIndex(catalogue).rows(queries).tolist() == _dict_rows(catalogue, queries)
