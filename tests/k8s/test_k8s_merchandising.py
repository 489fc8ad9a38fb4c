"""Merchandising rules set through Helm values reach the engine's recs container as valid rules."""

from __future__ import annotations

from typing import Any

import pytest

from shelfops.serving.rules import MerchRules

pytestmark = pytest.mark.k8s


def test_rules_from_values_render_as_valid_inline_yaml(
    engine_docs: dict[str, list[dict[str, Any]]],
) -> None:
    """The production scenario's rules land in the recs container env and parse as MerchRules."""
    isvc = next(
        d
        for d in engine_docs["production"]
        if d and d.get("kind") == "InferenceService" and d["metadata"]["name"].endswith("recs")
    )
    container = isvc["spec"]["predictor"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    rules = MerchRules.from_text(env["SHELFOPS_SERVING_RULES_YAML"])
    assert (rules.min_inventory, rules.max_markdown_count) == (5, 4)
    assert rules.surplus_weeks_of_cover == 26
