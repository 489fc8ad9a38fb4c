"""The synthetic retailer has the properties real retail data has (and that the models need)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from tests.conftest import SMALL

from shelfops.data.generate import AFFINITIES, generate

pytestmark = pytest.mark.unit


def _sales(tx: pd.DataFrame) -> pd.DataFrame:
    return tx[~tx["invoice"].str.startswith("C") & (tx["stock_code"] != "POST")]


def test_same_seed_same_data_other_seed_other_data() -> None:
    """Generation is deterministic for a seed and changes with it."""
    config = dataclasses.replace(SMALL, lines=3_000, customers=100, products=60)
    a, b = generate(config), generate(config)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    c = generate(dataclasses.replace(config, seed=config.seed + 1))
    assert not a.transactions["stock_code"].equals(c.transactions["stock_code"])


def test_size_and_span_follow_the_flags(small_retailer) -> None:
    """Line count lands near the request (repeats within a basket merge) over two years."""
    tx = small_retailer.transactions
    assert 0.7 * SMALL.lines <= len(tx) <= 1.2 * SMALL.lines
    span = tx["invoice_date"].max() - tx["invoice_date"].min()
    assert span.days >= 2 * 364 - 7
    assert tx["invoice_date"].max().date() <= SMALL.end_date


def test_q4_peak_and_weekly_pattern(small_retailer) -> None:
    """Units peak in Q4, and weekdays differ from each other."""
    sales = _sales(small_retailer.transactions)
    month = sales["invoice_date"].dt.month
    weekly = sales.groupby(sales["invoice_date"].dt.to_period("W"))["quantity"].sum()
    q4 = weekly[weekly.index.to_timestamp().month.isin([11, 12])].mean()
    rest = weekly[weekly.index.to_timestamp().month.isin([2, 3, 4, 5, 6, 7, 8, 9])].mean()
    assert q4 > 1.3 * rest
    by_dow = sales.groupby(sales["invoice_date"].dt.weekday)["invoice"].nunique()
    assert by_dow.max() > 1.2 * by_dow.min()
    christmas = small_retailer.products.loc[
        small_retailer.products["category"] == "Christmas", "stock_code"
    ]
    xmas_sales = sales[sales["stock_code"].isin(christmas)]
    assert month[xmas_sales.index].isin([10, 11, 12]).mean() > 0.85


def test_products_churn(small_retailer) -> None:
    """Products launch during the window and others are discontinued before its end."""
    products = small_retailer.products
    start = small_retailer.transactions["invoice_date"].min()
    end = small_retailer.transactions["invoice_date"].max()
    launched_inside = (products["launch_date"] > start + pd.Timedelta(days=180)).mean()
    discontinued_inside = (products["discontinue_date"] < end - pd.Timedelta(days=30)).mean()
    assert launched_inside > 0.15
    assert discontinued_inside > 0.15
    sales = _sales(small_retailer.transactions)
    first_year = set(
        sales.loc[sales["invoice_date"] < start + pd.Timedelta(days=365), "stock_code"]
    )
    last_quarter = set(sales.loc[sales["invoice_date"] > end - pd.Timedelta(days=91), "stock_code"])
    assert len(first_year - last_quarter) / len(first_year) > 0.15


def _pair_lift(tx: pd.DataFrame, key: str, a: str, b: str) -> float:
    baskets = tx.groupby("invoice")[key].agg(set)
    has_a = baskets.map(lambda s: a in s)
    has_b = baskets.map(lambda s: b in s)
    return float((has_a & has_b).mean() / max(has_a.mean() * has_b.mean(), 1e-9))


def test_planted_affinities_are_present(small_retailer) -> None:
    """Planted category affinities and product companions show as co-purchase lift."""
    sales = _sales(small_retailer.transactions)
    category = small_retailer.products.set_index("stock_code")["category"]
    sales = sales.assign(category=sales["stock_code"].map(category))
    planted = {frozenset((a, b)) for a, b, _ in AFFINITIES}
    names = sorted(sales["category"].dropna().unique())
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    lifts = {frozenset(p): _pair_lift(sales, "category", *p) for p in pairs}
    planted_lift = np.mean([v for k, v in lifts.items() if k in planted])
    other_lift = np.mean([v for k, v in lifts.items() if k not in planted])
    assert planted_lift > 1.3 * other_lift
    counts = sales["stock_code"].value_counts()
    popular = [c for c in counts.index[:40] if small_retailer.companions[c] in counts.index[:80]]
    lifts = [_pair_lift(sales, "stock_code", c, small_retailer.companions[c]) for c in popular[:8]]
    assert np.median(lifts) > 2.0


def test_guests_cancellations_and_consent_gaps(small_retailer) -> None:
    """About 20% of lines are guests, C invoices reverse sales, some consent is missing."""
    tx = small_retailer.transactions
    guests = (tx["customer_id"] == "").mean()
    assert 0.15 <= guests <= 0.27
    cancels = tx[tx["invoice"].str.startswith("C")]
    assert len(cancels) > 0 and (cancels["quantity"] < 0).all()
    originals = set(tx["invoice"]) & set(cancels["invoice"].str[1:])
    assert originals == set(cancels["invoice"].str[1:])
    missing = small_retailer.customers["opted_out_personalization"].isna().mean()
    assert 0.01 < missing < 0.10


def test_staples_are_repurchased_and_hidden_gems_convert(small_retailer) -> None:
    """Consumable staples are bought again and again; hidden gems have few, loyal buyers."""
    sales = _sales(small_retailer.transactions)
    known = sales[sales["customer_id"] != ""]
    pair_counts = known.groupby(["customer_id", "stock_code"])["invoice"].nunique()
    staple_counts = [
        pair_counts.get((c, p), 0)
        for c, ps in small_retailer.staples.items()
        for p in ps
        if known["customer_id"].eq(c).sum() > 40
    ]
    assert np.median(staple_counts) >= 3
    assert pair_counts.median() <= 1
    buyers = known.groupby("stock_code")["customer_id"].nunique()
    per_buyer = pair_counts.groupby(level="stock_code").mean()
    gems = [g for g in small_retailer.hidden_gems if g in buyers.index]
    assert gems
    assert buyers[gems].median() < buyers.median()
    assert per_buyer[gems].median() > 1.4 * per_buyer.median()


def test_markdowns_move_demand(small_retailer) -> None:
    """Weeks sold below full price carry more order lines than the same product's other weeks."""
    sales = _sales(small_retailer.transactions)
    flat = small_retailer.products.loc[
        small_retailer.products["category"].isin(["Lighting", "Wall Art", "Bath", "Furniture"]),
        "stock_code",
    ]
    sales = sales[sales["stock_code"].isin(flat)]  # categories without a season of their own
    week = sales["invoice_date"].dt.to_period("W")
    weekly = sales.groupby(["stock_code", week]).agg(
        units=("quantity", "size"), price=("unit_price", "median")
    )
    full = weekly.groupby(level="stock_code")["price"].transform("max")
    marked = weekly["price"] < 0.9 * full
    ratio = (
        weekly[marked].groupby(level="stock_code")["units"].mean()
        / weekly[~marked].groupby(level="stock_code")["units"].mean()
    ).dropna()
    assert ratio.median() > 1.1
