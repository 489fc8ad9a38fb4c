"""Served-path evaluation: customers replayed through the real server as of a cutoff."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from shelfops.evaluation.metrics import DISCOVER_LIST_METRICS
from shelfops.evaluation.rolling import recs_at_origins
from shelfops.evaluation.served import replay, state_home
from shelfops.models.recs import RecsConfig, purchase_lines
from shelfops.serving.rules import DISCOUNT_AFFINITY, MerchRules
from shelfops.settings import Settings
from shelfops.training.context import load_context
from shelfops.training.recs import train_recs

pytestmark = pytest.mark.integration

BLACK_FRIDAY_CUTOFF = pd.Timestamp("2025-12-01")
"""The Monday after Black Friday week 2025: the last week before it is a sitewide sale."""


def test_served_replay_after_a_sitewide_sale_keeps_personal_items(
    trained_home: Settings, tmp_path: Path
) -> None:
    """Served Recall/NDCG/HR@10 sit beside offline; >= 90% of personalized keep personal items."""
    quiet = lambda _m: None  # noqa: E731
    ctx = load_context(trained_home, quiet, build_features=False)
    config = RecsConfig(seed=3, epochs=4, train_cutoffs=2)
    model, _ = train_recs(ctx, BLACK_FRIDAY_CUTOFF, config, quiet)
    per, _, sl = recs_at_origins(ctx, model, [BLACK_FRIDAY_CUTOFF], ctx.data_end)
    scores = per[str(BLACK_FRIDAY_CUTOFF.date())]
    model = replace(model, stats=sl.stats)  # scored with the statistics of the cutoff
    lines = purchase_lines(ctx.transactions)
    home = state_home(ctx, BLACK_FRIDAY_CUTOFF, tmp_path / "state", trained_home)
    model_dir = tmp_path / "model"
    model.save(model_dir)

    result = replay(home, model_dir, sl, lines, scores["model"])
    assert result.customers == scores["model"]["customers"] == len(sl.targets) > 50
    assert result.degraded == 0
    for metric in ("recall@10", "ndcg@10", "hr@10"):
        assert 0.0 <= result.served[metric] <= 1.0
        assert result.offline[metric] == scores["model"][metric]
    assert result.catalogue["on_promotion"] > 0  # the sale shows in the catalogue as a promotion
    assert result.personalized >= 0.9 * result.customers  # the slice holds consenting buyers
    assert result.with_personal_items >= 0.9 * result.personalized
    assert result.gap() < 0.2, result.to_dict()
    # the discover lists are replayed too, beside the offline discover lists
    for metric in DISCOVER_LIST_METRICS:
        assert 0.0 <= result.served[metric] <= 1.0
        assert result.offline[metric] == scores["model"][metric]
    # what the rules and the sale cost the discover list (0.150 against 0.165 when written)
    served, offline = (r["recall@10_discover_list"] for r in (result.served, result.offline))
    assert served >= 0.8 * offline, (served, offline)

    # Had the discount-affinity limit covered promotions too (what every markdown used to mean),
    # the same sale would remove far more personal candidates.
    strict = MerchRules(affinity_applies_to=("clearance", "promotion"))
    old = replay(home, model_dir, sl, lines, scores["model"], rules=strict)
    removed = result.rules.get(DISCOUNT_AFFINITY)
    assert old.rules[DISCOUNT_AFFINITY].removed > (removed.removed if removed else 0)
    assert old.with_personal_items <= result.with_personal_items
