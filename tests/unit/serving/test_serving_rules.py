"""Merchandising rules: what each rule removes or boosts, and how a bad rules file fails."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest

from shelfops.serving.recs import DEFAULT_RULES
from shelfops.serving.rules import (
    DISCONTINUED,
    DISCOUNT_AFFINITY,
    MAX_MARKDOWN_COUNT,
    MIN_INVENTORY,
    REMOVING_RULES,
    Candidate,
    CatalogEntry,
    MerchRules,
    RuleMasks,
    RulesError,
    apply_rules,
    catalog_from_online,
    check,
    is_surplus,
)

pytestmark = pytest.mark.unit

PLAIN = CatalogEntry(
    inventory_on_hand=50,
    markdown_count=0,
    discontinued=False,
    on_clearance=False,
    on_promotion=False,
    weeks_of_cover=8,
)


def entry(**changes: object) -> CatalogEntry:
    return CatalogEntry(**{**PLAIN.__dict__, **changes})  # type: ignore[arg-type]


def allowed(rules: MerchRules, item: CatalogEntry | None, affinity: float) -> bool:
    return check(rules, item, affinity) is None


def test_shipped_rules_file_loads_and_matches_the_defaults() -> None:
    """The YAML shipped with the service is valid and states the documented defaults."""
    assert MerchRules.from_yaml(DEFAULT_RULES) == MerchRules()


def test_discontinued_items_are_never_allowed_whatever_the_rules() -> None:
    """Even the loosest rules cannot let a discontinued item through."""
    loose = MerchRules(min_inventory=0, max_markdown_count=1000, markdown_min_affinity=0)
    assert not allowed(loose, entry(discontinued=True), 1.0)


@pytest.mark.parametrize(
    ("changes", "affinity", "expected"),
    [
        ({}, 0.0, True),
        ({"inventory_on_hand": 0}, 0.0, False),
        ({"inventory_on_hand": 1}, 0.0, True),
        ({"inventory_on_hand": None, "weeks_of_cover": None}, 0.0, True),
        ({"markdown_count": 11}, 0.0, False),
        ({"markdown_count": 10}, 0.0, True),
        ({"on_clearance": True, "markdown_count": 1}, 0.1, False),
        ({"on_clearance": True, "markdown_count": 1}, 0.2, True),
        ({"on_promotion": True}, 0.0, True),
    ],
)
def test_each_rule_at_its_boundary(
    changes: dict[str, object], affinity: float, expected: bool
) -> None:
    """Inventory, markdown count and clearance affinity each decide at their default boundary."""
    assert allowed(MerchRules(), entry(**changes), affinity) is expected


def test_each_removal_names_its_rule_and_says_why() -> None:
    """The first failing rule is reported with a reason that quotes the item and the limit."""
    rules = MerchRules(min_inventory=5, max_markdown_count=2)
    cases = {
        DISCONTINUED: (entry(discontinued=True, inventory_on_hand=0), "discontinued"),
        MIN_INVENTORY: (entry(inventory_on_hand=3), "3 units on hand, below min_inventory 5"),
        MAX_MARKDOWN_COUNT: (entry(markdown_count=3), "3 clearance markdowns"),
        DISCOUNT_AFFINITY: (entry(on_clearance=True, markdown_count=1), "on clearance"),
    }
    for rule, (item, words) in cases.items():
        removal = check(rules, item, 0.05)
        assert removal is not None and removal.rule == rule and words in removal.reason


def test_sitewide_promotion_is_not_clearance_by_default() -> None:
    """Black Friday (a promotion) keeps items for low-affinity customers; clearance does not."""
    rules = MerchRules()
    assert check(rules, entry(on_promotion=True), 0.0) is None
    assert check(rules, entry(on_clearance=True, markdown_count=1), 0.0) is not None


def test_affinity_limit_covers_what_the_configuration_names() -> None:
    """Naming promotion too extends the limit to promoted items; naming none turns it off."""
    both = MerchRules(affinity_applies_to=("clearance", "promotion"))
    removal = check(both, entry(on_promotion=True), 0.1)
    assert removal is not None and removal.rule == DISCOUNT_AFFINITY
    assert "on promotion" in removal.reason
    assert check(both, entry(on_promotion=True), 0.3) is None
    off = MerchRules(affinity_applies_to=())
    assert check(off, entry(on_clearance=True, markdown_count=1), 0.0) is None
    with pytest.raises(RulesError, match="affinity_applies_to"):
        MerchRules.from_text("affinity_applies_to: [sitewide]\n")


def test_unknown_catalogue_entry_is_allowed() -> None:
    """An item missing from the catalogue snapshot falls back to the model's own on-sale view."""
    assert allowed(MerchRules(), None, 0.0)


def test_unknown_stock_is_not_zero_stock() -> None:
    """A retailer that reports no stock levels (The Complete Journey) still gets recommendations.

    Unknown inventory passes min_inventory whatever its limit and is never surplus, while the
    other rules still judge the item.
    """
    unknown = entry(inventory_on_hand=None, weeks_of_cover=None)
    strict = MerchRules(min_inventory=50, surplus_weeks_of_cover=1)
    assert allowed(strict, unknown, 0.0)
    assert not is_surplus(strict, unknown)
    assert not allowed(strict, entry(inventory_on_hand=None, discontinued=True), 0.0)
    clearance = entry(inventory_on_hand=None, on_clearance=True, markdown_count=1)
    removal = check(strict, clearance, 0.0)
    assert removal is not None and removal.rule == DISCOUNT_AFFINITY
    cands = [Candidate(c, 1.0, {}) for c in ("a", "b")]
    outcome = apply_rules(strict, cands, {"a": unknown, "b": unknown}, 0.0, k=2)
    assert [c.candidate.stock_code for c in outcome.kept] == ["a", "b"] and not outcome.removed


def test_surplus_boost_reorders_without_overriding_strong_matches() -> None:
    """A surplus item moves above a close rival but stays below a much stronger one."""
    catalog = {"strong": PLAIN, "close": PLAIN, "surplus": entry(weeks_of_cover=80)}
    cands = [
        Candidate("strong", 3.0, {}),
        Candidate("close", 1.2, {}),
        Candidate("surplus", 1.0, {}),
    ]
    kept = apply_rules(MerchRules(surplus_boost=0.5), cands, catalog, 0.0, k=3).kept
    assert [c.candidate.stock_code for c in kept] == ["strong", "surplus", "close"]
    assert [c.boosted for c in kept] == [False, True, False]
    assert [c.score for c in kept] == [3.0, 1.5, 1.2]


def test_apply_rules_filters_then_keeps_k() -> None:
    """Filtered items do not count toward k; order is preserved for equal scores."""
    catalog = {"a": PLAIN, "gone": entry(discontinued=True), "b": PLAIN, "c": PLAIN}
    cands = [Candidate(c, 1.0, {}) for c in ("a", "gone", "b", "c")]
    outcome = apply_rules(MerchRules(), cands, catalog, 0.0, k=2)
    assert [c.candidate.stock_code for c in outcome.kept] == ["a", "b"]
    assert [(r.stock_code, r.rule) for r in outcome.removed] == [("gone", DISCONTINUED)]
    assert outcome.removed_by_rule() == {DISCONTINUED: 1}


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
    """Online-store misses leave the product out; a row without stock keeps it as unknown."""
    rows = {
        "stock_code": ["a", "b", "c"],
        "inventory_on_hand": [5, None, None],
        "markdown_count": [1, None, 0],
        "discontinued": [False, None, False],
        "on_clearance": [True, None, False],
        "on_promotion": [False, None, True],
        "weeks_of_cover": [3.5, None, float("nan")],
    }
    catalog = catalog_from_online(rows)
    assert list(catalog) == ["a", "c"]
    assert catalog["a"] == CatalogEntry(5, 1, False, True, False, 3.5)
    assert catalog["c"] == CatalogEntry(None, 0, False, False, True, None)


def test_inline_rules_text_is_validated_like_the_file() -> None:
    """Inline YAML (what the chart sets) parses the same rules and rejects the same mistakes."""
    assert MerchRules.from_text("min_inventory: 5\n").min_inventory == 5
    with pytest.raises(RulesError, match=r"SHELFOPS_SERVING_RULES_YAML.*surplus_boost"):
        MerchRules.from_text("surplus_boost: -1\n")


def test_rule_masks_say_what_check_says_for_every_item_and_customer() -> None:
    """The array form the server applies to a batch names the same rule as check, item by item."""
    entries = [
        entry(
            inventory_on_hand=inv,
            markdown_count=md,
            on_clearance=cl,
            on_promotion=pr,
            discontinued=dc,
            weeks_of_cover=cover,
        )
        for inv, md, cl, pr, dc, cover in product(
            (0, 3, None), (0, 12), (False, True), (False, True), (False, True), (8, 80, None)
        )
    ]
    codes = [f"item{i}" for i in range(len(entries))] + ["not-in-catalogue"]
    catalog = dict(zip(codes, entries, strict=False))
    affinities = np.array([0.0, 0.1, 0.2, 0.9])
    for rules in (
        MerchRules(),
        MerchRules(min_inventory=2, max_markdown_count=5, markdown_min_affinity=0.1),
        MerchRules(affinity_applies_to=("clearance", "promotion")),
        MerchRules(affinity_applies_to=()),
    ):
        masks = RuleMasks.build(rules, catalog, codes)
        rows = np.tile(np.arange(len(codes)), (len(affinities), 1))
        got = masks.removed_by(rows, affinities)
        for (a, affinity), j in product(enumerate(affinities), range(len(codes))):
            removal = check(rules, catalog.get(codes[j]), float(affinity))
            expected = 0 if removal is None else 1 + REMOVING_RULES.index(removal.rule)
            assert got[a, j] == expected, (rules, codes[j], affinity)
            assert masks.removed_by(rows[0], float(affinity))[j] == expected
            assert masks.surplus[j] == is_surplus(rules, catalog.get(codes[j]))
