"""Behavioural tests of the next-basket recommender."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shelfops.features.definitions import RECS_SERVICE
from shelfops.models.recs import (
    PAIR_FEATURES,
    RecsConfig,
    _neighbours,
    build_candidates,
    item_stats,
    purchase_lines,
)
from shelfops.predictors.recs import RecsPredictor
from shelfops.training.context import Context
from shelfops.training.recs import narrowed, recs_slice, train_recs

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


def one_item_history(item: str) -> pd.DataFrame:
    """The feature row of customer "new", who bought ``item`` once, the day before the cutoff."""
    day_before = int(CUTOFF.value // 10**9) - 86400
    return pd.DataFrame(
        [
            {
                "customer_id": "new",
                "top_items": [item],
                "top_item_counts": [1],
                "top_item_last_ts": [day_before],
                "invoices_total": 1,
                "invoices_90d": 1,
                "last_purchase_ts": day_before,
                "opted_out_personalization": False,
            }
        ]
    )


def test_co_purchase_pattern_is_recovered(trained: dict[str, Any]) -> None:
    """Each planted pair is its partner's top neighbour, and a one-item history gets the partner."""
    stats = trained["model"].stats
    idx = stats.index
    for k in range(10):
        assert stats.items[int(stats.nbr_idx[idx[f"a{k}"], 0])] == f"b{k}"
    row = one_item_history("a3")
    recs = RecsPredictor(trained["model"]).predict(row, k=25)["new"]
    assert any(r["stock_code"] == "b3" and "often bought with" in r["reason"] for r in recs)


def test_the_discover_list_leaves_out_regulars_and_keeps_what_goes_with_them(
    trained: dict[str, Any],
) -> None:
    """Discover lists have no top item of the customer, in ranking or top-up; the rest stays.

    The planted partner of a one-item history is still found (it is not a regular), and the
    staples that head the main lists never appear.
    """
    model = trained["model"]
    rows = trained["rows"]
    main = model.recommend(rows, k=10)
    discover = model.recommend(rows, k=10, discover=True)
    tops = {
        str(c): set(map(str, t)) if isinstance(t, list | np.ndarray) else set()
        for c, t in zip(rows["customer_id"], rows["top_items"], strict=True)
    }
    personal = [c for c in main if c not in trained["world"]["opted"]]
    assert personal
    for c in personal:
        codes = [r.stock_code for r in discover[c]]
        assert len(codes) == 10 == len(set(codes))
        assert not set(codes) & tops[c], (c, set(codes) & tops[c])
        assert trained["world"]["staples"][c] not in codes
    # a main list is mostly regulars, so the discover list differs from it
    assert np.mean([main[c][0].stock_code in tops[c] for c in personal]) > 0.9
    # the items scored are ranked by the model, best first; the top-up (-inf) comes last
    for c in personal:
        scores = [r.score for r in discover[c]]
        finite = [x for x in scores if np.isfinite(x)]
        assert finite == sorted(finite, reverse=True) and scores[: len(finite)] == finite
    # what goes with a regular is discovered: a one-item history gets its planted partner
    row = one_item_history("a3")
    found = model.recommend(row, k=10, discover=True)["new"]
    assert "a3" not in [r.stock_code for r in found]
    assert any(r.stock_code == "b3" and "often bought with" in r.reason for r in found)


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


def test_masked_forward_scores_only_real_candidates_the_same(trained: dict[str, Any]) -> None:
    """Passing the mask skips padded cells in the MLP without changing any real score."""
    import torch

    from shelfops.models.recs import build_candidates

    model = trained["model"]
    rows = trained["rows"]
    batch = build_candidates(
        rows, model.stats, model.config, np.full(len(rows), CUTOFF.value / 1e9)
    )
    assert not bool(batch.mask.all())  # a ragged batch: some cells are padding
    args = (batch.items, model._norm(batch.feats), batch.hist_items, batch.hist_w)
    with torch.no_grad():
        full = model.net(*args).numpy()
        masked = model.net(*args, batch.mask).numpy()
    real = batch.mask.numpy()
    assert np.isneginf(masked[~real]).all()
    np.testing.assert_allclose(masked[real], full[real], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.score_batch(batch).numpy(), masked)
    # the hidden layers' scratch is reused: an answer must outlive the next batch's scoring
    first = model.score_batch(batch)
    kept = first.clone()
    half = build_candidates(
        rows.iloc[::2], model.stats, model.config, np.full(len(rows.iloc[::2]), CUTOFF.value / 1e9)
    )
    model.score_batch(half)
    assert torch.equal(first, kept)
    # another thread holding the scratch: this one allocates, same scores
    from shelfops.models.recs import _WORKSPACE

    with _WORKSPACE.lock:
        np.testing.assert_array_equal(model.score_batch(batch).numpy(), masked)


def _day(d: int) -> pd.Timestamp:
    return START + pd.Timedelta(days=d)


def test_item_cycle_trials_and_re_ranker_features_by_hand() -> None:
    """Hand example: repurchase cycle, first purchases, latest basket and category share."""
    buys = [("u", "x", 0), ("u", "x", 10), ("u", "x", 20), ("v", "x", 5), ("v", "x", 15)]
    buys += [("w", "y", 29), ("u", "z", 1)]
    lines = pd.DataFrame(
        [
            {"invoice": f"{c}{d}", "customer_id": c, "stock_code": it, "invoice_date": _day(d)}
            for c, it, d in buys
        ]
    )
    products = pd.DataFrame(
        {"stock_code": ["x", "y", "z"], "category": ["A", "B", "A"], "description": ""}
    )
    cutoff = _day(30)
    stats = item_stats(lines, products, cutoff, ["x", "y", "z"], RecsConfig())
    # x: gaps 20 + 10 days over 2 + 1 repeats, shrunk by two repeats of the 28-day prior
    assert stats.cycle[0] == pytest.approx((30 + 2 * 28) / (3 + 2))
    assert stats.cycle[1] == pytest.approx(28.0)  # y: never repeated, the prior
    # first purchases in the last 28 days: v's x (day 5), w's y (day 29); u's x and z are older
    assert stats.trials.tolist() == [1.0, 1.0, 0.0]
    # ties broken by 4-week popularity (x: 4 invoices, y: 1); z had no first purchase lately
    assert [stats.items[int(j)] for j in stats.trial_order] == ["x", "y"]
    ts = {d: int(_day(d).value // 10**9) for d in (20, 29)}
    row = {
        "customer_id": ["u"],
        "top_items": [["x", "y"]],
        "top_item_counts": [[3, 1]],
        "top_item_last_ts": [[ts[20], ts[29]]],
        "invoices_total": [4],
        "invoices_90d": [4],
        "last_purchase_ts": [ts[29]],
    }
    batch = build_candidates(row, stats, RecsConfig(), np.array([cutoff.value / 1e9]))
    feats = {stats.items[int(j)]: batch.feats[0, c].numpy() for c, j in enumerate(batch.items[0])}
    f = {name: i for i, name in enumerate(PAIR_FEATURES)}
    assert set(feats) == {"x", "y", "z"}  # own items, then popular and first-purchase ones
    assert [feats[i][f["in_latest_basket"]] for i in "xyz"] == [0.0, 1.0, 0.0]
    # counts 3 of x (A) and 1 of y (B): a quarter of the customer's purchases are in B
    assert [feats[i][f["category_share"]] for i in "xyz"] == pytest.approx([0.75, 0.25, 0.75])
    assert feats["x"][f["due_vs_item_cycle"]] == pytest.approx(
        np.log((10 + 1) / (stats.cycle[0] + 1)), rel=1e-5
    )
    assert feats["y"][f["log_trials4"]] > feats["z"][f["log_trials4"]]


def test_recommendations_ignore_the_other_customers_in_the_batch(trained: dict[str, Any]) -> None:
    """A customer's list is the same scored alone or beside everyone (no cross-row leakage)."""
    model = trained["model"]
    rows = trained["rows"]
    together = model.recommend(rows, k=10)
    for i in (3, 40, 79):
        cid = str(rows["customer_id"].iloc[i])
        alone = model.recommend(rows.iloc[[i]], k=10)[cid]
        assert [r.stock_code for r in alone] == [r.stock_code for r in together[cid]]
        assert [r.score for r in alone] == pytest.approx([r.score for r in together[cid]], 1e-4)


def _adoption_world(seed: int = 3) -> dict[str, Any]:
    """Each customer's first basket has a_k; from the second on, a_k and b_k (k: their group)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(120):
        c, k = f"c{i:03d}", i % 6
        for v, week in enumerate(range(int(rng.integers(0, 32)), 34, int(rng.integers(1, 3)))):
            day = START + pd.Timedelta(weeks=week, days=int(rng.integers(0, 7)))
            items = {f"s{i % 3}", f"a{k}", f"r{int(rng.integers(0, 40))}"}
            if v > 0:
                items.add(f"b{k}")
            rows += [
                {"invoice": f"{c}-{v}", "customer_id": c, "stock_code": it, "invoice_date": day}
                for it in sorted(items)
            ]
    lines = pd.DataFrame(rows)
    codes = sorted(lines["stock_code"].unique())
    customers = sorted(lines["customer_id"].unique())
    return {
        "lines": lines,
        "customers": pd.DataFrame(
            {
                "customer_id": pd.array(customers, dtype="string"),
                "opted_out_personalization": False,
                "opted_out_sale": False,
            }
        ),
        "products": pd.DataFrame(
            {
                "stock_code": codes,
                "description": "",
                "category": "Unknown",
                "discontinue_date": pd.NaT,
            }
        ),
    }


def test_co_purchase_with_the_latest_basket_lifts_a_new_item_into_the_top_10(
    fake_source_cls: Any, make_clean_tx: Any, make_weekly_sales: Any
) -> None:
    """Where buyers of a_k go on to buy b_k, a first-time a_k buyer gets b_k (never bought)."""
    world = _adoption_world()
    ctx = _context(world, fake_source_cls, make_clean_tx, make_weekly_sales)
    cfg = RecsConfig(
        epochs=40, patience=3, train_cutoffs=4, cutoff_spacing_weeks=2, lr=1e-2, seed=1
    )
    model, _ = train_recs(ctx, CUTOFF, cfg, lambda _m: None)
    now = int(CUTOFF.value // 10**9)
    row = {
        "customer_id": ["n"],
        "top_items": [["s0", "a2", "r5"]],
        "top_item_counts": [[1, 1, 1]],
        "top_item_last_ts": [[now - 86400] * 3],
        "invoices_total": [1],
        "invoices_90d": [1],
        "last_purchase_ts": [now - 86400],
        "opted_out_personalization": [False],
    }
    recs = [r.stock_code for r in model.recommend(row, k=20)["n"]]
    assert "b2" in recs[:10], recs
    # ranked above every other group's follow-up item (same popularity, no link to a2)
    others = [recs.index(b) for b in ("b0", "b1", "b3", "b4", "b5") if b in recs]
    assert all(recs.index("b2") < i for i in others), recs


def test_phase_one_slices_narrowed_from_the_refit_equal_fresh_reads(
    trained: dict[str, Any],
) -> None:
    """A slice narrowed to an earlier label end equals the one read for it (targets and rows)."""
    ctx, cfg = trained["ctx"], trained["model"].config
    lines = purchase_lines(ctx.transactions)
    lines = lines[lines["invoice_date"] < CUTOFF]
    items = trained["model"].stats.items
    at = CUTOFF - pd.Timedelta(weeks=5)  # week 25: the next visits fall in weeks 26 and 27
    label_end = at + pd.Timedelta(days=10)
    wide = recs_slice(ctx, lines, items, at, CUTOFF, cfg)
    fresh = recs_slice(ctx, lines, items, at, label_end, cfg)
    narrow = narrowed(lines, wide, label_end)
    assert 0 < len(narrow.targets) < len(wide.targets)
    assert narrow.targets == fresh.targets
    # same values; a column can be float in the wider read (a missing value elsewhere), which
    # scoring reads as numbers either way
    pd.testing.assert_frame_equal(narrow.rows, fresh.rows.reset_index(drop=True), check_dtype=False)


def test_neighbours_rank_by_probability_then_lower_item_and_keep_the_top_k() -> None:
    """Per item: most likely co-purchase first, equal rates in item order, only ``neighbours``."""
    # x (0) is bought with w (3) three times and with y (1) and z (2) twice each.
    baskets = [["x", "w"]] * 3 + [["x", "z"], ["x", "y"], ["x", "z"], ["x", "y"]]
    baskets += [["y", "z", "w"]] * 3
    past = pd.DataFrame(
        [{"invoice": f"i{b}", "item": it} for b, items in enumerate(baskets) for it in items]
    )
    past["item"] = past["item"].map({"x": 0, "y": 1, "z": 2, "w": 3})
    idx, val = _neighbours(past, 4, RecsConfig(neighbours=2, min_item_baskets=3))
    assert idx[0].tolist() == [3, 1]  # w first; y and z tie at 2/(7+3): the lower item stays
    assert val[0].tolist() == pytest.approx([3 / 10, 2 / 10])
    assert idx[1].tolist() == [2, 3]  # y: z and w tie (3 each) ahead of x (2)
