"""Merchandising rules: what each rule removes or boosts, and how a bad rules file fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfops.serving.recs import DEFAULT_RULES
from shelfops.serving.rules import (
    Candidate,
    CatalogEntry,
    MerchRules,
    RulesError,
    allowed,
    apply_rules,
    catalog_from_online,
)

pytestmark = pytest.mark.unit

PLAIN = CatalogEntry(
    inventory_on_hand=50, markdown_count=0, discontinued=False, marked_down=False, weeks_of_cover=8
)


def entry(**changes: object) -> CatalogEntry:
    return CatalogEntry(**{**PLAIN.__dict__, **changes})  # type: ignore[arg-type]


def test_shipped_rules_file_loads_and_matches_the_defaults() -> None:
    """The YAML shipped with the service is valid and states the documented defaults."""
    assert MerchRules.from_yaml(DEFAULT_RULES) == MerchRules()


def test_discontinued_items_are_never_allowed_whatever_the_rules() -> None:
    """Even the loosest rules cannot let a discontinued item through."""
    loose = MerchRules(min_inventory=0, max_markdown_count=1000, markdown_min_affinity=0)
    assert not allowed(loose, entry(discontinued=True), discount_affinity=1.0)


@pytest.mark.parametrize(
    ("changes", "affinity", "expected"),
    [
        ({}, 0.0, True),
        ({"inventory_on_hand": 0}, 0.0, False),
        ({"inventory_on_hand": 1}, 0.0, True),
        ({"markdown_count": 11}, 0.0, False),
        ({"markdown_count": 10}, 0.0, True),
        ({"marked_down": True}, 0.1, False),
        ({"marked_down": True}, 0.2, True),
    ],
)
def test_each_rule_at_its_boundary(
    changes: dict[str, object], affinity: float, expected: bool
) -> None:
    """Inventory, markdown count and markdown affinity each decide at their default boundary."""
    assert allowed(MerchRules(), entry(**changes), affinity) is expected


def test_unknown_catalogue_entry_is_allowed() -> None:
    """An item missing from the catalogue snapshot falls back to the model's own on-sale view."""
    assert allowed(MerchRules(), None, 0.0)


def test_surplus_boost_reorders_without_overriding_strong_matches() -> None:
    """A surplus item moves above a close rival but stays below a much stronger one."""
    catalog = {"strong": PLAIN, "close": PLAIN, "surplus": entry(weeks_of_cover=80)}
    cands = [
        Candidate("strong", 3.0, {}),
        Candidate("close", 1.2, {}),
        Candidate("surplus", 1.0, {}),
    ]
    kept = apply_rules(MerchRules(surplus_boost=0.5), cands, catalog, 0.0, k=3)
    assert [c.stock_code for c, _, _ in kept] == ["strong", "surplus", "close"]
    assert [boosted for _, _, boosted in kept] == [False, True, False]


def test_apply_rules_filters_then_keeps_k() -> None:
    """Filtered items do not count toward k; order is preserved for equal scores."""
    catalog = {"a": PLAIN, "gone": entry(discontinued=True), "b": PLAIN, "c": PLAIN}
    cands = [Candidate(c, 1.0, {}) for c in ("a", "gone", "b", "c")]
    kept = apply_rules(MerchRules(), cands, catalog, 0.0, k=2)
    assert [c.stock_code for c, _, _ in kept] == ["a", "b"]


def test_bad_rules_files_fail_with_the_field_named(tmp_path: Path) -> None:
    """Typos, bad values, non-mappings and missing files raise RulesError saying what to fix."""
    typo = tmp_path / "typo.yaml"
    typo.write_text("min_inventry: 3\n")
    with pytest.raises(RulesError, match="min_inventry"):
        MerchRules.from_yaml(typo)
    negative = tmp_path / "negative.yaml"
    negative.write_text("min_inventory: -1\n")
    with pytest.raises(RulesError, match="min_inventory"):
        MerchRules.from_yaml(negative)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(RulesError, match="mapping"):
        MerchRules.from_yaml(listing)
    with pytest.raises(RulesError, match="SHELFOPS_SERVING_RULES_FILE"):
        MerchRules.from_yaml(tmp_path / "missing.yaml")


def test_catalog_from_online_skips_products_without_a_row() -> None:
    """Online-store misses (None values) leave the product out instead of inventing zeros."""
    rows = {
        "stock_code": ["a", "b"],
        "inventory_on_hand": [5, None],
        "markdown_count": [1, None],
        "discontinued": [False, None],
        "marked_down": [True, None],
        "weeks_of_cover": [3.5, None],
    }
    catalog = catalog_from_online(rows)
    assert list(catalog) == ["a"]
    assert catalog["a"] == CatalogEntry(5, 1, False, True, 3.5)


def test_inline_rules_text_is_validated_like_the_file() -> None:
    """Inline YAML (what the chart sets) parses the same rules and rejects the same mistakes."""
    assert MerchRules.from_text("min_inventory: 5\n").min_inventory == 5
    with pytest.raises(RulesError, match=r"SHELFOPS_SERVING_RULES_YAML.*surplus_boost"):
        MerchRules.from_text("surplus_boost: -1\n")
