"""Real Feast apply, materialize, point-in-time training reads and online reads, on SQLite
and on a real Redis."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest

from shelfops.data.ingest import load_clean
from shelfops.features.build import weekly_sales
from shelfops.features.definitions import DEMAND_SERVICE, RECS_SERVICE
from shelfops.features.store import FeatureRepo, OnlineReadTimeout
from shelfops.settings import Settings

pytestmark = pytest.mark.integration


def _busiest_product(settings: Settings) -> str:
    panel = weekly_sales(load_clean(settings.root)["transactions"])
    return str(panel.groupby("stock_code")["units"].sum().idxmax())


def test_historical_reads_are_point_in_time_correct(featurised_home: Settings) -> None:
    """A training row at origin T sees exactly the sales of the 52 weeks before T, no later."""
    repo = FeatureRepo(featurised_home)
    repo.apply()
    code = _busiest_product(featurised_home)
    panel = weekly_sales(load_clean(featurised_home.root)["transactions"])
    series = panel[panel["stock_code"] == code].set_index("week_start")["units"]
    origins = [series.index[60], series.index[80]]
    entity = pd.DataFrame(
        {
            "stock_code": [code, code],
            "event_timestamp": [pd.Timestamp(o, tz="UTC") for o in origins],
        }
    )
    rows = repo.historical(DEMAND_SERVICE, entity).sort_values("event_timestamp")
    for origin, (_, row) in zip(origins, rows.iterrows(), strict=True):
        before = series[series.index < origin]
        expected = before.iloc[-52:].to_numpy()
        np.testing.assert_allclose(
            np.asarray(row["units_history_52w"])[-len(expected) :], expected, rtol=1e-6
        )
        assert row["units_last_week"] == pytest.approx(before.iloc[-1])
        assert row["units_mean_4w"] == pytest.approx(before.iloc[-4:].mean(), rel=1e-5)
    assert repo.feature_names(DEMAND_SERVICE)[0] == "units_last_week"


def test_every_entity_row_comes_back(featurised_home: Settings) -> None:
    """DuckDB returns one row per entity row, duplicates and out-of-window rows included."""
    repo = FeatureRepo(featurised_home)
    repo.apply()
    code = _busiest_product(featurised_home)
    ts = pd.Timestamp("2026-01-05", tz="UTC")
    entity = pd.DataFrame(
        {
            "stock_code": [code, code, "NO-SUCH", code],
            "event_timestamp": [ts, ts, ts, pd.Timestamp("2001-01-01", tz="UTC")],
        }
    )
    rows = repo.historical(DEMAND_SERVICE, entity)
    assert len(rows) == 4
    assert rows["units_mean_13w"].isna().sum() == 2


def _online_roundtrip(settings: Settings) -> dict[str, list[object]]:
    repo = FeatureRepo(settings)
    repo.apply()
    repo.materialize()
    behaviour = pd.read_parquet(settings.features_dir / "customer_behaviour.parquet")
    latest = behaviour.sort_values("event_timestamp").groupby("customer_id").tail(1)
    customer = latest.sort_values("invoices_total").iloc[-1]
    online = repo.online(
        RECS_SERVICE,
        [{"customer_id": customer["customer_id"]}, {"customer_id": "unknown-customer"}],
    )
    assert online["invoices_total"][0] == customer["invoices_total"]
    assert online["top_items"][0] == list(customer["top_items"])
    assert online["opted_out_personalization"][0] is False
    assert online["top_items"][1] is None
    # The request-path read (provider read, ShelfOps' value decoding) returns exactly what the
    # Feast SDK returns, for customers and for products, known or not.
    product = _busiest_product(settings)
    for service, rows in (
        (RECS_SERVICE, [{"customer_id": customer["customer_id"]}, {"customer_id": "nobody"}]),
        (DEMAND_SERVICE, [{"stock_code": product}, {"stock_code": "no-such-product"}]),
    ):
        refs = [r for view in repo.feature_refs(service).values() for r in view]
        sdk = repo.store.get_online_features(features=refs, entity_rows=rows).to_dict()
        fast = repo.online_refs(refs, rows)
        same = json.dumps(fast, default=str, sort_keys=True)  # NaN equals NaN this way
        assert same == json.dumps(sdk, default=str, sort_keys=True)
    removed = repo.forget_customer(str(customer["customer_id"]))
    assert removed >= 1
    gone = repo.online(RECS_SERVICE, [{"customer_id": customer["customer_id"]}])
    assert gone["top_items"] == [None] and gone["opted_out_personalization"] == [None]
    return online


def test_sqlite_online_store_serves_latest_values(featurised_home: Settings) -> None:
    """Materialized SQLite values equal each customer's newest offline row; forget removes them."""
    _online_roundtrip(featurised_home)


def test_sqlite_read_gives_up_on_a_held_lock_and_reads_again_after(
    featurised_home: Settings,
) -> None:
    """A writer holding the online store's lock makes a read with a deadline fail as a timeout
    within that deadline; the same repository reads again once the lock is released."""
    repo = FeatureRepo(featurised_home)
    repo.apply()
    repo.materialize()
    reader = FeatureRepo(featurised_home, read_timeout_s=0.2)
    refs = [r for view in reader.feature_refs(RECS_SERVICE).values() for r in view]
    rows = [{"customer_id": "nobody"}]
    assert reader.online_refs(refs, rows)["top_items"] == [None]
    writer = sqlite3.connect(featurised_home.feast_dir / "online.db")
    try:
        writer.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        with pytest.raises(OnlineReadTimeout, match="locked"):
            reader.online_refs(refs, rows)
        assert time.perf_counter() - started < 1.5
    finally:
        writer.rollback()
        writer.close()
    assert reader.online_refs(refs, rows)["top_items"] == [None]


def test_redis_online_store_serves_latest_values(featurised_home: Settings, redis_url: str) -> None:
    """The cluster profile reads the same values from a real redis-server; forget removes them."""
    settings = featurised_home.model_copy(
        update={"profile": "cluster", "redis_url": redis_url, "feast_project": "shelfops_redis"}
    )
    assert FeatureRepo(settings).repo_config().online_store.type == "redis"
    _online_roundtrip(settings)


def test_materializing_as_of_a_past_week_loads_every_product_as_of_then(
    featurised_home: Settings,
) -> None:
    """The product view, read from its newest stamp up to ``end``, gives each product's newest
    offline row up to then (a product first sold later has none), like a read of all rows."""
    repo = FeatureRepo(featurised_home)
    repo.apply()
    weekly = pd.read_parquet(featurised_home.features_dir / "product_weekly.parquet")
    stamps = np.sort(weekly["event_timestamp"].unique())
    end = pd.Timestamp(stamps[-20]) + pd.Timedelta(days=3)  # a Thursday, 17 weeks before the end
    repo.materialize(end=end.to_pydatetime())
    upto = weekly[weekly["event_timestamp"] <= end].sort_values("event_timestamp")
    newest = upto.groupby("stock_code").tail(1).set_index("stock_code")
    later = sorted(set(weekly["stock_code"]) - set(newest.index))
    assert later, "the sample should hold products first sold after the chosen week"
    codes = [*newest.index[:40], *later[:5]]
    online = repo.online(DEMAND_SERVICE, [{"stock_code": c} for c in codes])
    for i, code in enumerate(codes):
        got = online["units_mean_4w"][i]
        if code in newest.index:
            assert got == pytest.approx(float(newest.loc[code, "units_mean_4w"])), code
            assert online["weeks_since_first_sale"][i] == newest.loc[code, "weeks_since_first_sale"]
        else:
            assert got is None, code
