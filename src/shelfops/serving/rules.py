"""Merchandising rules applied to recommendations at request time, configured in YAML.

Merchandisers change these without touching code: the service reads a YAML file (the default
ships as ``shelfops/serving/merchandising.yaml``; ``SHELFOPS_SERVING_RULES_FILE`` names another)
or inline YAML in ``SHELFOPS_SERVING_RULES_YAML``, which the Helm chart sets from values. Rules
work on the product catalogue snapshot (the ``merch_v1`` FeatureService) and the customer's
discount affinity:

* never a discontinued item (not configurable);
* at least ``min_inventory`` units on hand;
* at most ``max_markdown_count`` markdowns taken (deep clearance is not recommended);
* items currently marked down only for customers whose discount affinity reaches
  ``markdown_min_affinity``;
* items with more than ``surplus_weeks_of_cover`` weeks of stock get ``surplus_boost`` added to
  their score, so surplus moves up the list without displacing much stronger matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class RulesError(ValueError):
    """The rules file is missing or invalid; the message says which setting and why."""


class MerchRules(BaseModel):
    """The merchandising rules (every field has a safe default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_inventory: int = Field(1, ge=0, description="Fewest units on hand to recommend an item.")
    max_markdown_count: int = Field(
        10, ge=0, description="Most markdowns an item may have taken and still be recommended."
    )
    markdown_min_affinity: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Smallest discount affinity (share of lines bought on markdown) a customer "
        "needs to be shown marked-down items.",
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

    inventory_on_hand: int
    markdown_count: int
    discontinued: bool
    marked_down: bool
    weeks_of_cover: float


Catalog = Mapping[str, CatalogEntry]


def catalog_from_online(features: Mapping[str, list[Any]]) -> dict[str, CatalogEntry]:
    """Build the catalogue from an online-store response (column lists keyed by name).

    Products whose catalogue row is missing are left out; :func:`allowed` then falls back to
    the model's own view of what is on sale.
    """
    out: dict[str, CatalogEntry] = {}
    codes = features.get("stock_code", [])
    for i, code in enumerate(codes):
        inventory = features["inventory_on_hand"][i]
        if inventory is None:
            continue
        out[str(code)] = CatalogEntry(
            inventory_on_hand=int(inventory),
            markdown_count=int(features["markdown_count"][i] or 0),
            discontinued=bool(features["discontinued"][i]),
            marked_down=bool(features["marked_down"][i]),
            weeks_of_cover=float(features["weeks_of_cover"][i] or 0.0),
        )
    return out


@dataclass(frozen=True)
class Candidate:
    """A scored item before the rules."""

    stock_code: str
    score: float
    payload: Mapping[str, Any]


def allowed(rules: MerchRules, entry: CatalogEntry | None, discount_affinity: float) -> bool:
    """Whether the rules let this item be shown to this customer.

    Args:
        rules: The rules.
        entry: The item's catalogue row (None: unknown to the catalogue, allowed if the model
            thinks it is on sale, which the caller has already checked).
        discount_affinity: The customer's discount affinity (0 when unknown or not personal).

    Returns:
        True when every rule passes.
    """
    if entry is None:
        return True
    if entry.discontinued or entry.inventory_on_hand < rules.min_inventory:
        return False
    if entry.markdown_count > rules.max_markdown_count:
        return False
    return not (entry.marked_down and discount_affinity < rules.markdown_min_affinity)


def is_surplus(rules: MerchRules, entry: CatalogEntry | None) -> bool:
    """Whether an item holds more weeks of stock than the surplus threshold."""
    return entry is not None and entry.weeks_of_cover > rules.surplus_weeks_of_cover


def apply_rules(
    rules: MerchRules,
    candidates: Iterable[Candidate],
    catalog: Catalog,
    discount_affinity: float,
    k: int,
) -> list[tuple[Candidate, float, bool]]:
    """Filter candidates by the rules, boost surplus, and keep the best ``k``.

    Candidates arrive best first; the sort is stable, so equal scores keep the model's order.

    Args:
        rules: The rules.
        candidates: Scored items, best first.
        catalog: The catalogue snapshot.
        discount_affinity: The customer's discount affinity.
        k: How many to keep.

    Returns:
        ``(candidate, adjusted score, boosted)`` for the kept items, best first.
    """
    kept: list[tuple[Candidate, float, bool]] = []
    for cand in candidates:
        entry = catalog.get(cand.stock_code)
        if not allowed(rules, entry, discount_affinity):
            continue
        boosted = is_surplus(rules, entry)
        kept.append((cand, cand.score + (rules.surplus_boost if boosted else 0.0), boosted))
    kept.sort(key=lambda t: -t[1])
    return kept[:k]
