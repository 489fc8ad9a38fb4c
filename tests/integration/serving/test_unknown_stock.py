"""A retailer without stock levels (The Complete Journey) is served real recommendations.

The Complete Journey reports no inventory. The catalogue once read that as zero units, the
``min_inventory`` rule removed every candidate and every answer of the quickstart on it was an
empty list. Here a slice of the real package data goes through features, Feast (SQLite) and the
recommendation server as a user's home does.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shelfops.data.completejourney import import_completejourney
from shelfops.data.ingest import load_clean
from shelfops.features.build import build_feature_tables
from shelfops.features.store import FeatureRepo
from shelfops.models.recs import RecsConfig
from shelfops.serving.examples import example_ids
from shelfops.serving.recs import RecsServer
from shelfops.serving.rules import MIN_INVENTORY
from shelfops.settings import ServingSettings, Settings
from shelfops.training.context import load_context
from shelfops.training.recs import train_recs

pytestmark = pytest.mark.integration


def test_unknown_stock_is_served_and_the_examples_sell(tmp_path: Path) -> None:
    """Personal items for known households, cold start for new ones, none removed for stock."""
    settings = Settings(home=tmp_path / "home")
    import_completejourney(settings.root, households=40)
    clean = load_clean(settings.root)
    assert clean["products"]["inventory_on_hand"].isna().all()  # the data set has no stock
    build_feature_tables(clean, settings.features_dir)
    repo = FeatureRepo(settings)
    repo.apply()
    repo.materialize()
    quiet = lambda _m: None  # noqa: E731
    ctx = load_context(settings, quiet, build_features=False)
    model, _ = train_recs(ctx, ctx.data_end, RecsConfig(seed=3, epochs=2, train_cutoffs=2), quiet)
    model.save(tmp_path / "model")

    server = RecsServer(settings, ServingSettings())
    try:
        server.load(tmp_path / "model", "shelfops_recs:slice")
        entries = list(server.catalog.values())
        assert entries and all(e.inventory_on_hand is None for e in entries)
        assert all(e.weeks_of_cover is None for e in entries)
        customer, codes = example_ids(settings)
        answers = server.recommend_many([customer, "NEW-1"], 10, explain=True)
        known, new = answers
        assert known.personalized and len(known.items) == 10
        assert sum(i.source == "personal" for i in known.items) >= 5
        assert len(new.items) == 10 and {i.source for i in new.items} == {"cold_start"}
        removed = [r.rule for a in answers for r in a.removed or []]
        assert MIN_INVENTORY not in removed
    finally:
        server.close()

    # The printed forecast examples are regulars of many households that sell now.
    weekly = pd.read_parquet(settings.features_dir / "product_weekly.parquet")
    now = weekly[weekly["event_timestamp"] == weekly["event_timestamp"].max()]
    selling = now.set_index(now["stock_code"].astype(str))["units_mean_4w"]
    assert len(codes) == 2 and all(selling.get(c, 0.0) > 0 for c in codes)
    behaviour = pd.read_parquet(settings.features_dir / "customer_behaviour.parquet")
    newest = behaviour.sort_values("event_timestamp").groupby("customer_id").tail(1)
    regulars = newest["top_items"].explode().astype(str).value_counts()
    assert (
        regulars.get(codes[0], 0) == regulars[regulars.index.isin(selling[selling > 0].index)].max()
    )
