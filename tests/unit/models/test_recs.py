"""Behavioural tests of the next-basket recommender."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shelfops.features.definitions import RECS_SERVICE
from shelfops.models.recs import RecsConfig, _neighbours, item_stats, purchase_lines
from shelfops.predictors.recs import RecsPredictor
from shelfops.training.context import Context
from shelfops.training.recs import train_recs

pytestmark = pytest.mark.unit

START = pd.Timestamp("2024-01-01")
CUTOFF = START + pd.Timedelta(weeks=30)


def _world(seed: int = 0) -> dict[str, Any]:
    """Planted structure: pairs (a_k, b_k) always bought together; each customer has a staple."""
    rng = np.random.default_rng(seed)
    rows = []
    inv = 0
    customers = [f"c{i:03d}" for i in range(80)]
    staples = {c: f"s{i % 5}" for i, c in enumerate(customers)}
    for c in customers:
        for week in range(0, 34, int(rng.integers(2, 4))):
            inv += 1
            day = START + pd.Timedelta(weeks=week, days=int(rng.integers(0, 7)))
            items = {staples[c]}
            for k in rng.choice(10, size=2, replace=False):
                items.update({f"a{k}", f"b{k}"})
            items.add(f"r{int(rng.integers(0, 20))}")
            rows += [
                {"invoice": str(inv), "customer_id": c, "stock_code": it, "invoice_date": day}
                for it in sorted(items)
            ]
    lines = pd.DataFrame(rows)
    opted = {"c000", "c001", "c002"}
    cust = pd.DataFrame(
        {
            "customer_id": pd.array(customers, dtype="string"),
            "opted_out_personalization": [c in opted for c in customers],
            "opted_out_sale": False,
        }
    )
    codes = sorted(lines["stock_code"].unique())
    products = pd.DataFrame(
        {
            "stock_code": codes,
            "description": [f"ITEM {c}" for c in codes],
            "category": "Unknown",
            "discontinue_date": pd.NaT,
        }
    )
    return {
        "lines": lines,
        "customers": cust,
        "products": products,
        "staples": staples,
        "opted": opted,
    }


def _context(
    world: dict[str, Any], fake_source_cls: Any, make_clean_tx: Any, make_weekly_sales: Any
) -> Context:
    tx = make_clean_tx(world["lines"])
    panel = make_weekly_sales(tx)
    source = fake_source_cls(panel, tx, world["customers"], world["products"])
    return Context(
        transactions=tx,
        customers=world["customers"],
        products=world["products"],
        panel=panel,
        source=source,
        data_end=START + pd.Timedelta(weeks=34),
    )


@pytest.fixture(scope="module")
def trained(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One small trained recommender shared by the tests of this module."""
    fake_source_cls = request.getfixturevalue("fake_source_cls")
    make_clean_tx = request.getfixturevalue("make_clean_tx")
    make_weekly_sales = request.getfixturevalue("make_weekly_sales")
    world = _world()
    ctx = _context(world, fake_source_cls, make_clean_tx, make_weekly_sales)
    cfg = RecsConfig(epochs=15, patience=3, train_cutoffs=4, cutoff_spacing_weeks=3, seed=1)
    model, info = train_recs(ctx, CUTOFF, cfg, lambda _m: None)
    rows = ctx.source.historical(
        RECS_SERVICE,
        pd.DataFrame(
            {"customer_id": sorted(world["staples"]), "event_timestamp": CUTOFF.tz_localize("UTC")}
        ),
    )
    return {"world": world, "ctx": ctx, "model": model, "info": info, "rows": rows}


def test_opted_out_customers_never_in_training(trained: dict[str, Any]) -> None:
    """Customers who opted out of personalization are absent from every training slice."""
    assert trained["info"]["training_customers"] > 50
    model = trained["model"]
    assert model.history["train_customers"] > 0
    # The behaviour feature rows of opted-out customers are empty, and the consent flag is set.
    rows = trained["rows"].set_index("customer_id")
    for c in trained["world"]["opted"]:
        assert bool(rows.loc[c, "opted_out_personalization"])
    recs = RecsPredictor(model).predict(trained["rows"], k=10)
    for c in trained["world"]["opted"]:
        assert all("popular" in r["reason"] or "trending" in r["reason"] for r in recs[c])


def test_repeat_buyers_get_their_staples(trained: dict[str, Any]) -> None:
    """A customer's staple (bought on almost every visit) is in their top 3."""
    recs = RecsPredictor(trained["model"]).predict(trained["rows"], k=10)
    hits = [
        trained["world"]["staples"][c] in [r["stock_code"] for r in recs[c][:3]]
        for c in recs
        if c not in trained["world"]["opted"]
    ]
    assert np.mean(hits) > 0.95


def test_co_purchase_pattern_is_recovered(trained: dict[str, Any]) -> None:
    """Each planted pair is its partner's top neighbour, and a one-item history gets the partner."""
    stats = trained["model"].stats
    idx = stats.index
    for k in range(10):
        assert stats.items[int(stats.nbr_idx[idx[f"a{k}"], 0])] == f"b{k}"
    row = pd.DataFrame(
        [
            {
                "customer_id": "new",
                "top_items": ["a3"],
                "top_item_counts": [1],
                "top_item_last_ts": [int(CUTOFF.value // 10**9) - 86400],
                "invoices_total": 1,
                "invoices_90d": 1,
                "last_purchase_ts": int(CUTOFF.value // 10**9) - 86400,
                "opted_out_personalization": False,
            }
        ]
    )
    recs = RecsPredictor(trained["model"]).predict(row, k=25)["new"]
    assert any(r["stock_code"] == "b3" and "often bought with" in r["reason"] for r in recs)


def test_cold_start_and_discontinued(trained: dict[str, Any]) -> None:
    """Unknown customers get popular items; discontinued items are never recommended."""
    model = trained["model"]
    gone = trained["world"]["staples"]["c010"]
    stats = item_stats(
        purchase_lines(trained["ctx"].transactions),
        trained["world"]["products"].assign(
            discontinue_date=lambda p: pd.to_datetime(p["stock_code"].map({gone: START}))
        ),
        CUTOFF,
        model.stats.items,
        model.config,
    )
    model.stats, saved = stats, model.stats
    try:
        recs = RecsPredictor(model).predict(
            pd.concat([trained["rows"], pd.DataFrame([{"customer_id": "stranger"}])]), k=10
        )
    finally:
        model.stats = saved
    assert len(recs["stranger"]) == 10
    assert all(gone not in [r["stock_code"] for r in v] for v in recs.values())


def test_neighbours_are_smoothed_co_purchase_rates_of_supported_items() -> None:
    """Hand example: P(j | i) = co-baskets / (baskets with i + 3); items in < 3 baskets drop out."""
    baskets = [["x", "y"], ["x", "y"], ["x", "z"], ["x", "y"], ["y", "w"], ["q", "x"]]
    past = pd.DataFrame(
        [{"invoice": f"i{b}", "item": it} for b, items in enumerate(baskets) for it in items]
    )
    past["item"] = past["item"].map({"x": 0, "y": 1, "z": 2, "w": 3, "q": 4})
    idx, val = _neighbours(past, 5, RecsConfig(neighbours=2, min_item_baskets=3))
    # x is in 5 baskets, y in 4: z, w, q (1 basket each) are neither rows nor neighbours.
    assert idx[0].tolist() == [1, -1] and val[0, 0] == pytest.approx(3 / (5 + 3))
    assert idx[1].tolist() == [0, -1] and val[1, 0] == pytest.approx(3 / (4 + 3))
    assert (idx[2:] == -1).all() and (val[2:] == 0).all()


def test_small_batches_are_scored_in_numpy_like_the_network(trained: dict[str, Any]) -> None:
    """The request-time numpy scorer gives the network's scores (and top 10) on the same batch."""
    import torch

    from shelfops.models.recs import NUMPY_SCORING_MAX_CELLS, build_candidates

    model = trained["model"]
    rows = trained["rows"]
    now = np.full(len(rows), CUTOFF.value / 1e9)
    batch = build_candidates(rows, model.stats, model.config, now)
    with torch.no_grad():
        net = model.net(batch.items, model._norm(batch.feats), batch.hist_items, batch.hist_w)
    net = net.masked_fill(~batch.mask, float("-inf")).numpy()
    fast = model._score_numpy(batch)
    assert np.array_equal(np.isinf(fast), np.isinf(net))
    finite = np.isfinite(net)
    np.testing.assert_allclose(fast[finite], net[finite], rtol=1e-5, atol=1e-5)
    top = np.argsort(-net, axis=1, kind="stable")[:, :10]
    assert (np.argsort(-fast, axis=1, kind="stable")[:, :10] == top).mean() > 0.99
    one = build_candidates(rows.iloc[:1], model.stats, model.config, now[:1])
    assert one.mask.numel() <= NUMPY_SCORING_MAX_CELLS  # one customer takes the numpy path
    alone = model.score_batch(one).numpy()[0]
    shown = np.isfinite(alone)
    np.testing.assert_allclose(alone[shown], net[0, : len(alone)][shown], rtol=1e-5, atol=1e-5)
