"""Merchandising rules applied to recommendations at request time, configured in YAML.

This module is the ONE implementation of every rule: the recommendation server, the served-path
evaluation (``shelfops backtest --served``) and the console's explorer and rule preview all call
:func:`apply_rules` / :func:`check`, which say what each rule removed and why.

Merchandisers change the rules without touching code: the service reads a YAML file (the default
ships as ``shelfops/serving/merchandising.yaml``; ``SHELFOPS_SERVING_RULES_FILE`` names another)
or inline YAML in ``SHELFOPS_SERVING_RULES_YAML``, which the Helm chart sets from values. Rules
work on the product catalogue snapshot (the ``merch_v1`` FeatureService) and the customer's
discount affinity. Two kinds of price cut are told apart:

* a **clearance markdown** is a permanent cut of an item's own price on its way out; each one is
  counted in ``markdown_count``, and an item priced below list after taking one is ``on_clearance``;
* a **promotion** is temporary: an item promo, Black Friday, a January sale. An item priced below
  list without any clearance markdown is ``on_promotion``; promotions never add to
  ``markdown_count``.

The rules, in the order they are checked (the first one that fails names the removal):

``discontinued`` (always on)
    A discontinued item is never recommended. *Example*: the Lantern was discontinued last
    week; it is removed for everybody.
``min_inventory``
    At least ``min_inventory`` units on hand. *Example*: ``min_inventory: 5`` and 3 candles
    left: removed. An item whose stock level the retailer does not report (no
    ``inventory_on_hand`` in the products table, as in The Complete Journey) is not judged by
    this rule: unknown stock is not zero stock.
``max_markdown_count``
    At most ``max_markdown_count`` clearance markdowns taken (deep clearance is not promoted).
    *Example*: ``max_markdown_count: 2`` and a rug cut three times on its way out: removed.
``discount_affinity``
    Items on a price cut of a kind named in ``affinity_applies_to`` (default: ``clearance``) only
    for customers whose discount affinity (share of their lines bought below full price) reaches
    ``markdown_min_affinity``. *Example*: with the defaults, a vase on clearance is not shown to a
    customer with affinity 0.05, but during Black Friday (a promotion, not clearance) everything
    stays recommendable for everybody. Add ``promotion`` to the list to also keep promoted items
    away from full-price shoppers.
``surplus_boost`` (never removes)
    Items with more than ``surplus_weeks_of_cover`` weeks of stock get ``surplus_boost`` added to
    their score, so surplus moves up the list without displacing much stronger matches.
    *Example*: a throw with 80 weeks of cover scored 1.0 overtakes a cushion scored 1.2. Items
    of unknown stock are never surplus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DISCONTINUED: Final = "discontinued"
MIN_INVENTORY: Final = "min_inventory"
MAX_MARKDOWN_COUNT: Final = "max_markdown_count"
DISCOUNT_AFFINITY: Final = "discount_affinity"
SURPLUS_BOOST: Final = "surplus_boost"
REMOVING_RULES: Final[tuple[str, ...]] = (
    DISCONTINUED,
    MIN_INVENTORY,
    MAX_MARKDOWN_COUNT,
    DISCOUNT_AFFINITY,
)
"""Rules that remove items, in the order they are checked (metric label values)."""

PriceCut = Literal["clearance", "promotion"]


class RulesError(ValueError):
    """The rules file is missing or invalid; the message says which setting and why."""


class MerchRules(BaseModel):
    """The merchandising rules (every field has a safe default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_inventory: int = Field(1, ge=0, description="Fewest units on hand to recommend an item.")
    max_markdown_count: int = Field(
        10,
        ge=0,
        description="Most clearance markdowns an item may have taken and still be recommended.",
    )
    markdown_min_affinity: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Smallest discount affinity (share of lines bought below full price) a "
        "customer needs to be shown items on the price cuts named in affinity_applies_to.",
    )
    affinity_applies_to: tuple[PriceCut, ...] = Field(
        ("clearance",),
        description="Which price cuts the discount-affinity limit covers: clearance "
        "(markdowns on the way out) and/or promotion (temporary and sitewide sales).",
    )
    surplus_weeks_of_cover: float = Field(
        52.0, gt=0, description="Weeks of cover above which an item counts as surplus."
    )
    surplus_boost: float = Field(
        0.5, ge=0, description="Score added to surplus items (model score units)."
    )

    @classmethod
    def from_text(cls, text: str, source: str = "SHELFOPS_SERVING_RULES_YAML") -> MerchRules:
        """Read rules from YAML text (unknown keys are an error, not ignored).

        Args:
            text: A YAML mapping of rule: value.
            source: Where the text came from, for error messages.

        Returns:
            The rules.

        Raises:
            RulesError: Not a mapping, or a value is invalid.
        """
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise RulesError(f"merchandising rules {source} are not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise RulesError(f"merchandising rules {source} must be a YAML mapping of rule: value")
        try:
            return cls(**raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise RulesError(f"invalid merchandising rules in {source}: {problems}") from exc

    @classmethod
    def from_yaml(cls, path: Path) -> MerchRules:
        """Read rules from a YAML mapping (unknown keys are an error, not ignored).

        Args:
            path: The YAML file.

        Returns:
            The rules.

        Raises:
            RulesError: The file is missing, not a mapping, or a value is invalid.
        """
        try:
            text = path.read_text()
        except OSError as exc:
            raise RulesError(
                f"cannot read merchandising rules {path}: {exc.strerror}; "
                "set SHELFOPS_SERVING_RULES_FILE to an existing YAML file"
            ) from exc
        return cls.from_text(text, str(path))


@dataclass(frozen=True)
class CatalogEntry:
    """The merchandising state of one product (a ``merch_v1`` row)."""

    inventory_on_hand: int | None
    """Units on hand; None when the retailer does not report stock for it (unknown, not 0)."""
    markdown_count: int
    discontinued: bool
    on_clearance: bool
    on_promotion: bool
    weeks_of_cover: float | None
    """Weeks of stock at the recent selling rate; None when the stock is unknown."""

    def price_cuts(self) -> tuple[PriceCut, ...]:
        """The kinds of price cut the item is on now (empty at full price)."""
        cuts: list[PriceCut] = []
        if self.on_clearance:
            cuts.append("clearance")
        if self.on_promotion:
            cuts.append("promotion")
        return tuple(cuts)


Catalog = Mapping[str, CatalogEntry]


def catalog_from_online(features: Mapping[str, list[Any]]) -> dict[str, CatalogEntry]:
    """Build the catalogue from an online-store response (column lists keyed by name).

    Products whose catalogue row is missing (no ``discontinued`` flag, which every row has) are
    left out; :func:`check` then falls back to the model's own view of what is on sale. A row
    without ``inventory_on_hand`` is a product of unknown stock: it stays, with None.
    """
    out: dict[str, CatalogEntry] = {}
    codes = features.get("stock_code", [])
    for i, code in enumerate(codes):
        if features["discontinued"][i] is None:
            continue
        inventory = _known(features["inventory_on_hand"][i])
        cover = _known(features["weeks_of_cover"][i])
        out[str(code)] = CatalogEntry(
            inventory_on_hand=None if inventory is None else int(inventory),
            markdown_count=int(features["markdown_count"][i] or 0),
            discontinued=bool(features["discontinued"][i]),
            on_clearance=bool(features["on_clearance"][i]),
            on_promotion=bool(features["on_promotion"][i]),
            weeks_of_cover=None if cover is None else float(cover),
        )
    return out


def _known(value: Any) -> Any:
    """``value``, or None when the online store holds no value (None) or a NaN."""
    return None if value is None or value != value else value


@dataclass(frozen=True)
class Candidate:
    """A scored item before the rules."""

    stock_code: str
    score: float
    payload: Any
    """What the caller scored (a model's recommendation, a row); the rules do not read it."""


@dataclass(frozen=True)
class Removal:
    """One item a rule removed, and why (in words a merchandiser reads)."""

    stock_code: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Kept:
    """An item that passed every rule, with its score after the surplus boost."""

    candidate: Candidate
    score: float
    boosted: bool


@dataclass
class RuleOutcome:
    """What :func:`apply_rules` did to one candidate list."""

    kept: list[Kept] = field(default_factory=list)
    removed: list[Removal] = field(default_factory=list)

    def removed_by_rule(self) -> dict[str, int]:
        """How many candidates each rule removed (rules that removed nothing are left out)."""
        counts: dict[str, int] = {}
        for r in self.removed:
            counts[r.rule] = counts.get(r.rule, 0) + 1
        return counts


def check(
    rules: MerchRules, entry: CatalogEntry | None, discount_affinity: float
) -> Removal | None:
    """The first rule that removes this item for this customer, or None when all pass.

    Args:
        rules: The rules.
        entry: The item's catalogue row (None: unknown to the catalogue, allowed; the model has
            already left out what it knows to be discontinued).
        discount_affinity: The customer's discount affinity (0 when unknown or not personal).

    Returns:
        The removal (its ``stock_code`` is empty; :func:`apply_rules` fills it in) or None.
    """
    if entry is None:
        return None
    if entry.discontinued:
        return Removal("", DISCONTINUED, "discontinued")
    if entry.inventory_on_hand is not None and entry.inventory_on_hand < rules.min_inventory:
        return Removal(
            "",
            MIN_INVENTORY,
            f"{entry.inventory_on_hand} units on hand, below min_inventory {rules.min_inventory}",
        )
    if entry.markdown_count > rules.max_markdown_count:
        return Removal(
            "",
            MAX_MARKDOWN_COUNT,
            f"{entry.markdown_count} clearance markdowns, above max_markdown_count "
            f"{rules.max_markdown_count}",
        )
    cuts = [c for c in entry.price_cuts() if c in rules.affinity_applies_to]
    if cuts and discount_affinity < rules.markdown_min_affinity:
        return Removal(
            "",
            DISCOUNT_AFFINITY,
            f"on {cuts[0]} and the customer's discount affinity {discount_affinity:.2f} is "
            f"below markdown_min_affinity {rules.markdown_min_affinity:g}",
        )
    return None


def is_surplus(rules: MerchRules, entry: CatalogEntry | None) -> bool:
    """Whether an item holds more weeks of stock than the surplus threshold (unknown: no)."""
    return (
        entry is not None
        and entry.weeks_of_cover is not None
        and entry.weeks_of_cover > rules.surplus_weeks_of_cover
    )


def apply_rules(
    rules: MerchRules,
    candidates: Iterable[Candidate],
    catalog: Catalog,
    discount_affinity: float,
    k: int | None = None,
) -> RuleOutcome:
    """Filter candidates by the rules, boost surplus, keep the best ``k``, and say what was removed.

    Candidates arrive best first; the sort is stable, so equal scores keep the model's order.

    Args:
        rules: The rules.
        candidates: Scored items, best first.
        catalog: The catalogue snapshot.
        discount_affinity: The customer's discount affinity.
        k: How many to keep (None: all that pass).

    Returns:
        The kept items (best first, at most ``k``) and every candidate a rule removed, with the
        rule and the reason, in candidate order.
    """
    out = RuleOutcome()
    for cand in candidates:
        entry = catalog.get(cand.stock_code)
        removal = check(rules, entry, discount_affinity)
        if removal is not None:
            out.removed.append(Removal(cand.stock_code, removal.rule, removal.reason))
            continue
        boosted = is_surplus(rules, entry)
        out.kept.append(Kept(cand, cand.score + (rules.surplus_boost if boosted else 0.0), boosted))
    out.kept.sort(key=lambda t: -t.score)
    if k is not None:
        del out.kept[k:]
    return out


@dataclass(frozen=True)
class RuleMasks:
    """:func:`check` and :func:`is_surplus` for every item of a list at once, as arrays.

    Built from :func:`check` itself (one call per item and snapshot), so each rule still lives
    in that one function: ``fixed`` is what it says for a customer whom the discount-affinity
    limit never stops, ``cut`` marks items it stops for a customer whom the limit always stops.
    A request then applies the rules to a whole batch of candidates with array operations and
    asks :func:`check` for the words only for the removals it reports.
    """

    fixed: np.ndarray
    """Per item: 0 when it passes, else 1 + the index in :data:`REMOVING_RULES` of the rule."""
    cut: np.ndarray
    """Per item: on a price cut that the discount-affinity limit covers (and fixed passes)."""
    surplus: np.ndarray
    """Per item: :func:`is_surplus`."""
    min_affinity: float
    boost: float

    @classmethod
    def build(cls, rules: MerchRules, catalog: Catalog, codes: Iterable[str]) -> RuleMasks:
        """Evaluate the rules for each item (in the order of ``codes``) on a catalogue snapshot.

        Args:
            rules: The rules.
            catalog: The catalogue snapshot.
            codes: Stock codes, one per item row.

        Returns:
            The masks.
        """
        code_of = {rule: i + 1 for i, rule in enumerate(REMOVING_RULES)}
        fixed, cut, surplus = [], [], []
        for code in codes:
            entry = catalog.get(code)
            always = check(rules, entry, float("inf"))  # the affinity limit never stops it
            never = check(rules, entry, float("-inf"))  # the affinity limit always stops it
            fixed.append(code_of[always.rule] if always is not None else 0)
            cut.append(always is None and never is not None)
            surplus.append(is_surplus(rules, entry))
        return cls(
            fixed=np.asarray(fixed, np.int8),
            cut=np.asarray(cut, bool),
            surplus=np.asarray(surplus, bool),
            min_affinity=rules.markdown_min_affinity,
            boost=rules.surplus_boost,
        )

    def removed_by(self, items: np.ndarray, affinity: np.ndarray | float) -> np.ndarray:
        """The rule code (0: kept) of each item row for each customer.

        Args:
            items: Item rows, shape (customers, candidates) or (candidates,).
            affinity: Each customer's discount affinity, shape (customers,), or one value.

        Returns:
            Rule codes shaped like ``items``; ``REMOVING_RULES[code - 1]`` names the rule.
        """
        fixed = self.fixed[items]
        low = np.asarray(affinity, np.float64) < self.min_affinity
        if np.ndim(low):
            low = low[:, None]
        limit = np.int8(1 + REMOVING_RULES.index(DISCOUNT_AFFINITY))
        return np.where((fixed == 0) & self.cut[items] & low, limit, fixed)
