"""A seeded synthetic home-decor retailer that looks like a real online-retail export.

What is planted, and why each piece matters to the models:

* **Calendar**: weekly buckets Monday to Sunday, day-of-week and hour-of-day patterns, a yearly
  curve with a Q4 peak, a post-Christmas lull and a January sale; categories with their own seasons
  (Christmas only in Q4, Garden in spring and summer, Textiles in autumn and winter).
* **Range churn**: a core range that stays, and seasonal collections launched four times a year
  that live 20 to 80 weeks, ramp up after launch and are cleared with markdowns before they go.
* **Prices that move demand**: clearance markdowns, short promotions, Black Friday and January
  sales; demand responds with a per-product price elasticity; discount-seeking customers favour
  marked-down items.
* **Baskets**: each customer has category preferences; baskets mix categories along a planted
  category-to-category affinity matrix, and each product has a planted companion product that is
  often bought with it.
* **Repeat purchases**: consumable staples are re-bought on a personal interval; a few "hidden
  gems" are rarely bought overall but re-bought by almost everyone who finds them.
* **Real-world dirt**: about 20% of lines from guest checkouts (no customer id), ~2% of invoices
  cancelled by a ``C`` invoice, postage lines, customers with no consent record, and a small rate
  of duplicated lines, missing descriptions and zero prices that ingestion must catch.

Everything is vectorised with NumPy so a million lines take seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv


@dataclass(frozen=True)
class Category:
    """A product category with its price level and seasonal shape."""

    name: str
    median_price: float
    consumable: bool
    season: str
    nouns: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "Lighting",
        28.0,
        False,
        "flat",
        ("LAMP", "T-LIGHT HOLDER", "LANTERN", "FAIRY LIGHTS", "PENDANT SHADE", "CANDLESTICK"),
    ),
    Category(
        "Candles & Fragrance",
        9.0,
        True,
        "candles",
        ("SCENTED CANDLE", "REED DIFFUSER", "TEA LIGHTS 24 PACK", "WAX MELTS", "ROOM SPRAY"),
    ),
    Category(
        "Textiles",
        24.0,
        False,
        "textiles",
        ("CUSHION COVER", "THROW", "TABLE RUNNER", "RUG", "CURTAIN PAIR"),
    ),
    Category(
        "Wall Art",
        35.0,
        False,
        "flat",
        ("FRAMED PRINT", "MIRROR", "WALL CLOCK", "CANVAS", "PHOTO FRAME"),
    ),
    Category(
        "Kitchen & Dining",
        14.0,
        True,
        "kitchen",
        ("MUG", "TEA TOWEL", "SERVING BOWL", "DINNER PLATE", "NAPKINS 20 PACK", "COASTERS"),
    ),
    Category(
        "Storage",
        18.0,
        False,
        "storage",
        ("STORAGE BASKET", "JAR WITH LID", "TRINKET BOX", "SHELF", "LAUNDRY BAG"),
    ),
    Category(
        "Garden",
        16.0,
        False,
        "garden",
        ("PLANTER", "WATERING CAN", "BIRD FEEDER", "SOLAR LIGHT", "HERB POT"),
    ),
    Category(
        "Christmas",
        8.0,
        False,
        "christmas",
        ("BAUBLE SET", "WREATH", "STOCKING", "ADVENT CALENDAR", "TREE TOPPER"),
    ),
    Category(
        "Bath",
        7.0,
        True,
        "flat",
        ("HAND SOAP", "BATH SALTS", "SOAP DISH", "HAND TOWEL", "BODY LOTION"),
    ),
    Category(
        "Furniture",
        120.0,
        False,
        "flat",
        ("SIDE TABLE", "STOOL", "BOOKCASE", "ARMCHAIR", "CONSOLE TABLE"),
    ),
    Category(
        "Gifts & Stationery",
        6.0,
        False,
        "gifts",
        ("GIFT WRAP", "NOTEBOOK", "GREETING CARD", "GIFT BAG", "PENCIL SET"),
    ),
)

_ADJECTIVES = (
    "VINTAGE",
    "RUSTIC",
    "HANGING",
    "GLASS",
    "CERAMIC",
    "WOVEN",
    "LINEN",
    "WOODEN",
    "ENAMEL",
    "MARBLE",
    "RATTAN",
    "VELVET",
    "BOTANICAL",
    "SCANDI",
    "MOROCCAN",
    "RETRO",
)
_COLOURS = (
    "WHITE",
    "IVORY",
    "SAGE",
    "PINK",
    "NAVY",
    "OCHRE",
    "TERRACOTTA",
    "BLACK",
    "GREY",
    "BLUSH",
    "TEAL",
    "GOLD",
    "NATURAL",
    "RED",
)

#: Planted category-to-category affinities: (a, b, strength); symmetric.
AFFINITIES: tuple[tuple[str, str, float], ...] = (
    ("Candles & Fragrance", "Lighting", 4.0),
    ("Christmas", "Candles & Fragrance", 3.0),
    ("Christmas", "Gifts & Stationery", 3.5),
    ("Kitchen & Dining", "Textiles", 2.0),
    ("Garden", "Storage", 2.5),
    ("Bath", "Candles & Fragrance", 2.5),
    ("Wall Art", "Lighting", 2.0),
    ("Furniture", "Textiles", 2.5),
)

_US_STATES = (
    "CA",
    "TX",
    "FL",
    "NY",
    "PA",
    "IL",
    "OH",
    "GA",
    "NC",
    "MI",
    "NJ",
    "VA",
    "WA",
    "AZ",
    "MA",
    "TN",
    "IN",
    "MD",
    "MO",
    "WI",
    "CO",
    "MN",
    "OR",
    "NV",
    "UT",
)
_STATE_WEIGHTS = np.array(
    [
        39,
        30,
        22,
        20,
        13,
        12.6,
        11.8,
        10.9,
        10.7,
        10,
        9.3,
        8.6,
        7.8,
        7.3,
        7,
        7,
        6.8,
        6.2,
        6.2,
        5.9,
        5.8,
        5.7,
        4.2,
        3.2,
        3.4,
    ]
)
_DOW_WEIGHTS = np.array([0.16, 0.15, 0.15, 0.16, 0.12, 0.10, 0.16])
_HOUR_WEIGHTS = np.array(
    [
        0.2,
        0.1,
        0.1,
        0.1,
        0.1,
        0.2,
        0.5,
        1.2,
        2.5,
        3.5,
        4.0,
        4.2,
        4.5,
        4.3,
        4.0,
        3.8,
        3.5,
        3.2,
        3.5,
        4.2,
        4.5,
        3.8,
        2.4,
        1.0,
    ]
)

TRANSACTION_HEADERS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)


def default_end_date(today: dt.date | None = None) -> dt.date:
    """The last Sunday strictly before ``today``: data that is fresh but only has whole weeks."""
    today = today or dt.date.today()
    return today - dt.timedelta(days=(today.weekday() + 1))


@dataclass(frozen=True)
class GeneratorConfig:
    """Size and shape of a synthetic retailer."""

    lines: int = 60_000
    customers: int = 1_500
    products: int = 400
    years: float = 2.0
    end_date: dt.date = field(default_factory=default_end_date)
    seed: int = 7
    guest_share: float = 0.20
    cancel_rate: float = 0.02
    missing_consent_share: float = 0.04
    dirt_rate: float = 0.002
    hidden_gems: int = 0  # 0 means about 1.5% of products


@dataclass
class SyntheticRetailer:
    """The generated tables plus the ground truth that tests and reports may check against."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    products: pd.DataFrame
    companions: dict[str, str]
    hidden_gems: list[str]
    staples: dict[str, list[str]]

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write the three tables as CSV exports (the spellings of a classic retail export).

        Returns:
            ``{table: path}`` for what was written.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "transactions": out_dir / "transactions.csv",
            "customers": out_dir / "customers.csv",
            "products": out_dir / "products.csv",
        }
        tx = self.transactions.copy()
        tx["invoice_date"] = tx["invoice_date"].dt.strftime("%Y-%m-%d %H:%M:%S")
        tx.columns = list(TRANSACTION_HEADERS)
        _write_csv(tx, paths["transactions"])
        cust = self.customers.copy()
        for col in ("signup_date", "consent_updated_at"):
            cust[col] = cust[col].dt.strftime("%Y-%m-%d")
        _write_csv(cust, paths["customers"])
        prod = self.products.copy()
        for col in ("launch_date", "discontinue_date"):
            prod[col] = prod[col].dt.strftime("%Y-%m-%d")
        _write_csv(prod, paths["products"])
        return paths


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pacsv.write_csv(table, path)


def _doy_bump(doy: np.ndarray, centre: float, width: float) -> np.ndarray:
    dist = np.abs(doy - centre)
    dist = np.minimum(dist, 365.0 - dist)
    return np.exp(-((dist / width) ** 2))


def yearly_curve(doy: np.ndarray) -> np.ndarray:
    """Overall demand by day of year: Q4 peak, Christmas lull, January sale, summer dip."""
    curve = (
        1.0
        + 0.95 * _doy_bump(doy, 338, 20)
        + 0.12 * _doy_bump(doy, 12, 8)
        - 0.12 * _doy_bump(doy, 205, 30)
    )
    lull = (doy >= 358) | (doy <= 2)
    return np.where(lull, curve * 0.5, curve)


def category_curve(season: str, doy: np.ndarray) -> np.ndarray:
    """A category's own seasonal multiplier on top of the yearly curve."""
    shapes: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "flat": lambda d: np.ones_like(d),
        "candles": lambda d: 0.8 + 0.8 * _doy_bump(d, 335, 35),
        "textiles": lambda d: 0.65 + 0.7 * _doy_bump(d, 345, 60),
        "kitchen": lambda d: 0.9 + 0.4 * _doy_bump(d, 340, 25),
        "storage": lambda d: 0.9 + 0.8 * _doy_bump(d, 15, 16),
        "garden": lambda d: 0.25 + 1.6 * _doy_bump(d, 150, 45),
        "christmas": lambda d: np.where(
            (d >= 275) & (d <= 360), 0.05 + 4.0 * _doy_bump(d, 335, 22), 0.02
        ),
        "gifts": lambda d: 0.8 + 1.0 * _doy_bump(d, 340, 18) + 0.3 * _doy_bump(d, 45, 5),
    }
    return shapes[season](doy.astype(float))


def generate(config: GeneratorConfig) -> SyntheticRetailer:
    """Generate a synthetic retailer.

    Args:
        config: Size, calendar and seed.

    Returns:
        The transactions, customers and products tables and the planted ground truth.
    """
    rng = np.random.default_rng(config.seed)
    end = pd.Timestamp(config.end_date)
    n_weeks = max(8, round(52 * config.years))
    start = end - pd.Timedelta(days=7 * n_weeks - 1)
    start = start - pd.Timedelta(days=start.weekday())  # a Monday
    week_starts = start + pd.to_timedelta(np.arange(n_weeks) * 7, unit="D")
    doy = (week_starts + pd.Timedelta(days=3)).dayofyear.to_numpy().astype(float)
    n_cat = len(CATEGORIES)

    products = _make_products(rng, config, week_starts)
    n_prod = len(products["code"])
    cat_of = products["cat"]

    # --- price factors (markdowns, promotions, sales) and the product weight matrix --------------
    price_factor, markdown_count = _price_factors(rng, products, week_starts, doy)
    cat_season = np.stack([category_curve(c.season, doy) for c in CATEGORIES])  # (cat, week)
    weeks = np.arange(n_weeks)
    launch, disc = products["launch_week"], products["disc_week"]
    active = (weeks[None, :] >= launch[:, None]) & (weeks[None, :] < disc[:, None])
    age = weeks[None, :] - launch[:, None]
    ramp = np.clip(0.35 + 0.65 * age / 4.0, 0.35, 1.0)
    weight = (
        products["pop"][:, None]
        * ramp
        * cat_season[cat_of]
        * price_factor ** (-products["elasticity"][:, None])
    )
    weight = np.where(active, weight, 0.0)
    markdown_boost = np.where(price_factor < 0.95, 4.0, 1.0)

    # --- customers ------------------------------------------------------------------------------
    cust = _make_customers(rng, config, n_weeks, n_cat, products)
    n_cust = len(cust["id"])

    # --- invoices: Poisson per customer-week, plus guest checkouts ------------------------------
    sitewide_sale = np.where(_black_friday(doy), 1.35, np.where(_january_sale(doy), 1.2, 1.0))
    season_total = yearly_curve(doy) * (1.0 + 0.18 * weeks / n_weeks) * sitewide_sale
    cust_active = (weeks[None, :] >= cust["join_week"][:, None]) & (
        weeks[None, :] < cust["leave_week"][:, None]
    )
    exp_lines_known = float(
        (cust["rate"][:, None] * season_total[None, :] * cust_active).sum() * 1.0
    )
    mean_basket = float(np.mean(cust["basket"])) + 0.6  # staples and companions add lines
    known_lines_target = config.lines * (1.0 - config.guest_share)
    scale = known_lines_target / max(exp_lines_known * mean_basket, 1.0)
    lam = cust["rate"][:, None] * scale * season_total[None, :] * cust_active
    counts = rng.poisson(lam)
    inv_cust = np.repeat(np.repeat(np.arange(n_cust), n_weeks), counts.ravel())
    inv_week = np.repeat(np.tile(weeks, n_cust), counts.ravel())
    guest_basket = 4.0
    guest_lines = config.lines * config.guest_share
    guest_lam = season_total / season_total.sum() * guest_lines / (guest_basket + 0.3)
    g_counts = rng.poisson(guest_lam)
    inv_cust = np.concatenate([inv_cust, np.full(int(g_counts.sum()), -1)])
    inv_week = np.concatenate([inv_week, np.repeat(weeks, g_counts)])
    n_inv = len(inv_cust)
    is_guest = inv_cust < 0
    day = rng.choice(7, size=n_inv, p=_DOW_WEIGHTS / _DOW_WEIGHTS.sum())
    hour = rng.choice(24, size=n_inv, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    minute = rng.integers(0, 60, size=n_inv)
    inv_ts = (
        start.to_datetime64()
        + (inv_week * 7 + day).astype("timedelta64[D]")
        + hour.astype("timedelta64[h]")
        + minute.astype("timedelta64[m]")
    )
    order = np.lexsort((inv_ts, inv_cust))
    inv_cust, inv_week, inv_ts, is_guest = (
        inv_cust[order],
        inv_week[order],
        inv_ts[order],
        is_guest[order],
    )

    # --- staple repeat purchases: re-bought on a personal interval ------------------------------
    same_cust = np.r_[False, inv_cust[1:] == inv_cust[:-1]] & ~is_guest
    gap_weeks = np.where(
        same_cust,
        (inv_ts - np.r_[inv_ts[:1], inv_ts[:-1]]).astype("timedelta64[h]").astype(float) / 168.0,
        2.0,
    )
    staple_inv, staple_prod = _staple_lines(rng, inv_cust, inv_week, gap_weeks, cust, active)

    # --- browse lines: anchor category, affinity hops, product within category-week -------------
    basket_mean = np.where(is_guest, guest_basket, cust["basket"][np.maximum(inv_cust, 0)])
    n_lines = 1 + rng.negative_binomial(2, 2 / (2 + np.maximum(basket_mean - 1, 0.01)))
    line_inv = np.repeat(np.arange(n_inv), n_lines)
    line_cust = inv_cust[line_inv]
    line_week = inv_week[line_inv]
    pref = np.where(
        (line_cust >= 0)[:, None],
        cust["pref"][np.maximum(line_cust, 0)],
        cust["global_pref"][None, :],
    )
    # Only categories with something on sale that week can be picked.
    on_sale = np.stack([(weight[cat_of == c] > 0).any(axis=0) for c in range(n_cat)])
    cat_week = cat_season * on_sale
    anchor_pref = pref * cat_week[:, line_week].T
    anchor = _sample_rows(rng, anchor_pref)
    inv_anchor = np.zeros(n_inv, dtype=int)
    inv_anchor[line_inv[::-1]] = anchor[::-1]  # first line of each invoice is the anchor
    affinity = _affinity_matrix()
    hop = rng.random(len(line_inv)) > 0.55
    hop_pref = affinity[inv_anchor[line_inv]] * pref * cat_week[:, line_week].T
    line_cat = np.where(hop, _sample_rows(rng, hop_pref), inv_anchor[line_inv])
    seeker = rng.random(len(line_inv)) < np.where(
        line_cust >= 0, cust["discount_affinity"][np.maximum(line_cust, 0)], 0.15
    )
    line_prod = _sample_products(rng, line_cat, line_week, seeker, weight, markdown_boost, cat_of)
    ok = line_prod >= 0
    line_inv, line_prod = line_inv[ok], line_prod[ok]

    # --- companions: "often bought with" ---------------------------------------------------------
    comp = products["companion"][line_prod]
    comp_season = np.minimum(cat_season[cat_of[comp], inv_week[line_inv]], 1.0)
    take = (rng.random(len(line_prod)) < 0.22 * comp_season) & active[comp, inv_week[line_inv]]
    all_inv = np.concatenate([line_inv, line_inv[take], staple_inv])
    all_prod = np.concatenate([line_prod, comp[take], staple_prod])
    lines = pd.DataFrame({"inv": all_inv, "prod": all_prod}).drop_duplicates()
    all_inv = lines["inv"].to_numpy()
    all_prod = lines["prod"].to_numpy()

    tx = _assemble(
        rng, config, all_inv, all_prod, inv_cust, inv_week, inv_ts, cust, products, price_factor
    )
    customers = _customer_table(rng, config, cust, start, week_starts)
    product_table = _product_table(rng, products, price_factor, markdown_count, weight, week_starts)
    codes = products["code"]
    gems = [str(codes[i]) for i in np.flatnonzero(products["gem"])]
    staples = {
        str(cust["id"][c]): [str(codes[p]) for p in cust["staples"][c]]
        for c in range(n_cust)
        if cust["staples"][c]
    }
    companions = {str(codes[i]): str(codes[products["companion"][i]]) for i in range(n_prod)}
    return SyntheticRetailer(tx, customers, product_table, companions, gems, staples)


def _affinity_matrix() -> np.ndarray:
    names = [c.name for c in CATEGORIES]
    mat = np.full((len(names), len(names)), 0.35)
    np.fill_diagonal(mat, 1.0)
    for a, b, s in AFFINITIES:
        i, j = names.index(a), names.index(b)
        mat[i, j] = mat[j, i] = s
    return mat


def _sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Sample one column index per row with probability proportional to the row's weights."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _sample_products(
    rng: np.random.Generator,
    line_cat: np.ndarray,
    line_week: np.ndarray,
    seeker: np.ndarray,
    weight: np.ndarray,
    markdown_boost: np.ndarray,
    cat_of: np.ndarray,
) -> np.ndarray:
    """Pick a product per line from its category-week distribution (-1 when nothing is on sale)."""
    out = np.full(len(line_cat), -1)
    key = (line_cat * weight.shape[1] + line_week) * 2 + seeker.astype(int)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    bounds = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1], True])
    members = {c: np.flatnonzero(cat_of == c) for c in range(len(CATEGORIES))}
    u_all = rng.random(len(line_cat))
    for lo, hi in itertools.pairwise(bounds):
        k = int(sorted_key[lo])
        is_seeker, rest = k % 2, k // 2
        cat, week = divmod(rest, weight.shape[1])
        prods = members[cat]
        w = weight[prods, week] * (markdown_boost[prods, week] if is_seeker else 1.0)
        total = w.sum()
        if total <= 0:
            continue
        idx = order[lo:hi]
        pick = np.searchsorted(np.cumsum(w), u_all[idx] * total, side="right")
        out[idx] = prods[np.minimum(pick, len(prods) - 1)]
    return out


def _make_products(
    rng: np.random.Generator, config: GeneratorConfig, week_starts: pd.DatetimeIndex
) -> dict[str, np.ndarray]:
    n = config.products
    n_weeks = len(week_starts)
    n_cat = len(CATEGORIES)
    cat_share = np.array([1.2, 1.0, 1.1, 0.9, 1.2, 0.9, 0.8, 0.8, 0.7, 0.4, 0.8])
    cat = rng.choice(n_cat, size=n, p=cat_share / cat_share.sum())
    core = rng.random(n) < 0.35
    consumable = np.array([CATEGORIES[c].consumable for c in cat])
    core |= consumable & (rng.random(n) < 0.5)
    # Seasonal collections launch every 13 weeks, from a year before the window to its end.
    collection_weeks = np.arange(-52, n_weeks, 13)
    launch = np.where(core, -rng.integers(60, 300, size=n), rng.choice(collection_weeks, size=n))
    christmas = cat == [c.name for c in CATEGORIES].index("Christmas")
    life = rng.integers(20, 81, size=n)
    disc = np.where(core, n_weeks + 1000, launch + life)
    core_retired = core & (rng.random(n) < 0.08)
    disc = np.where(core_retired, rng.integers(n_weeks // 3, n_weeks + 20, size=n), disc)
    # Christmas lines launch in autumn and live a year or two (they sell only in Q4 anyway).
    disc = np.where(christmas & ~core, launch + rng.integers(52, 110, size=n), disc)
    pop = rng.lognormal(0.0, 1.1, size=n)
    n_gems = config.hidden_gems or max(3, round(0.015 * n))
    gem = np.zeros(n, dtype=bool)
    gem_candidates = np.flatnonzero(core & (disc > n_weeks))
    gem[rng.choice(gem_candidates, size=min(n_gems, len(gem_candidates)), replace=False)] = True
    pop = np.where(gem, np.quantile(pop, 0.05) * 0.2, pop)
    median = np.array([CATEGORIES[c].median_price for c in cat])
    price = median * rng.lognormal(0.0, 0.45, size=n)
    price = np.maximum(np.floor(price) + rng.choice([0.49, 0.95, 0.99], size=n), 0.49)
    elasticity = rng.uniform(1.0, 2.2, size=n)
    # Companion: a product in an affine category, chosen by popularity.
    affinity = _affinity_matrix()
    comp_cat = _sample_rows(rng, affinity[cat])
    companion = np.empty(n, dtype=int)
    for c in range(n_cat):
        members = np.flatnonzero(cat == c)
        rows = np.flatnonzero(comp_cat == c)
        if len(members) == 0:
            members = np.arange(n)
        p = pop[members] / pop[members].sum()
        companion[rows] = rng.choice(members, size=len(rows), p=p)
    same = companion == np.arange(n)
    companion[same] = (companion[same] + 1) % n
    codes = _stock_codes(rng, n)
    descriptions = _descriptions(rng, cat)
    return {
        "code": codes,
        "desc": descriptions,
        "cat": cat,
        "core": core,
        "launch_week": launch,
        "disc_week": disc,
        "pop": pop,
        "gem": gem,
        "price": price,
        "elasticity": elasticity,
        "companion": companion,
        "consumable": consumable,
    }


def _stock_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    numbers = rng.choice(np.arange(10000, 99999), size=n, replace=False)
    suffix = rng.choice(["", "", "", "A", "B", "C"], size=n)
    return np.array([f"{a}{b}" for a, b in zip(numbers, suffix, strict=True)])


def _descriptions(rng: np.random.Generator, cat: np.ndarray) -> np.ndarray:
    seen: set[str] = set()
    out = []
    for c in cat:
        noun = rng.choice(CATEGORIES[c].nouns)
        text = f"{rng.choice(_COLOURS)} {rng.choice(_ADJECTIVES)} {noun}"
        while text in seen:
            text = f"{text} {rng.choice(['SMALL', 'LARGE', 'SET OF 2', 'SET OF 3', 'MINI'])}"
        seen.add(text)
        out.append(text)
    return np.array(out)


def _price_factors(
    rng: np.random.Generator,
    products: dict[str, np.ndarray],
    week_starts: pd.DatetimeIndex,
    doy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Price paid relative to list price per product-week, and clearance markdowns taken so far."""
    n, n_weeks = len(products["code"]), len(week_starts)
    factor = np.ones((n, n_weeks))
    weeks = np.arange(n_weeks)
    episodes = np.zeros((n, n_weeks))
    # Clearance before discontinuation: two steps down over the last six weeks.
    to_go = products["disc_week"][:, None] - weeks[None, :]
    factor = np.where((to_go > 0) & (to_go <= 6), 0.7, factor)
    factor = np.where((to_go > 0) & (to_go <= 3), 0.5, factor)
    episodes += (to_go == 6) | (to_go == 3)
    # Short promotions: each product about once a year, two to three weeks at 20% off.
    n_promos = rng.poisson(n_weeks / 52, size=n)
    for i in np.flatnonzero(n_promos):
        for s in rng.integers(0, n_weeks, size=n_promos[i]):
            length = int(rng.integers(2, 4))
            factor[i, s : s + length] = np.minimum(factor[i, s : s + length], 0.8)
    # Black Friday week and the January sale are sitewide.
    black_friday, january = _black_friday(doy), _january_sale(doy)
    factor[:, black_friday] = np.minimum(factor[:, black_friday], 0.85)
    factor[:, january] = np.minimum(factor[:, january], 0.8)
    # Promotions are temporary: only the clearance steps above count as markdowns.
    markdown_count = np.cumsum(episodes, axis=1).astype(int)
    return factor, markdown_count


def _black_friday(doy: np.ndarray) -> np.ndarray:
    return (doy >= 327) & (doy <= 334)


def _january_sale(doy: np.ndarray) -> np.ndarray:
    return (doy >= 1) & (doy <= 14)


def _make_customers(
    rng: np.random.Generator,
    config: GeneratorConfig,
    n_weeks: int,
    n_cat: int,
    products: dict[str, np.ndarray],
) -> dict[str, Any]:
    n = config.customers
    cat_share = np.bincount(products["cat"], minlength=n_cat).astype(float) + 1.0
    global_pref = cat_share / cat_share.sum()
    pref = rng.dirichlet(global_pref * 4.0, size=n) + 1e-4
    existing = rng.random(n) < 0.35
    join = np.where(existing, 0, (n_weeks * rng.random(n) ** 0.8).astype(int))
    lifetime = rng.exponential(90, size=n).astype(int) + 4
    leave = join + lifetime
    rate = rng.gamma(0.7, 1.0, size=n)
    wholesale = rng.random(n) < 0.08
    basket = np.exp(rng.normal(np.log(6.0), 0.6, size=n)) * np.where(wholesale, 2.5, 1.0)
    discount_affinity = rng.beta(1.0, 4.0, size=n)
    # Staples: consumables from the core range in the customer's favourite categories.
    consumables = np.flatnonzero(
        products["consumable"]
        & products["core"]
        & (products["disc_week"] > n_weeks)
        & ~products["gem"]
    )
    gems = np.flatnonzero(products["gem"])
    staples: list[list[int]] = []
    intervals: list[list[float]] = []
    for c in range(n):
        k = int(rng.choice([0, 1, 2, 3, 4], p=[0.3, 0.25, 0.25, 0.12, 0.08]))
        chosen: list[int] = []
        if k and len(consumables):
            w = pref[c, products["cat"][consumables]] * products["pop"][consumables] ** 0.5
            chosen = list(
                rng.choice(consumables, size=min(k, len(consumables)), replace=False, p=w / w.sum())
            )
        favourite = int(np.argmax(pref[c]))
        liked_gems = gems[products["cat"][gems] == favourite]
        if len(liked_gems) and rng.random() < 0.3:
            chosen.append(int(rng.choice(liked_gems)))
        staples.append([int(x) for x in chosen])
        intervals.append(list(rng.uniform(2.0, 9.0, size=len(chosen))))
    return {
        "id": np.arange(12346, 12346 + n),
        "pref": pref,
        "global_pref": global_pref,
        "join_week": join,
        "leave_week": leave,
        "rate": rate,
        "basket": basket,
        "wholesale": wholesale,
        "discount_affinity": discount_affinity,
        "staples": staples,
        "intervals": intervals,
        "state": rng.choice(_US_STATES, size=n, p=_STATE_WEIGHTS / _STATE_WEIGHTS.sum()),
    }


def _staple_lines(
    rng: np.random.Generator,
    inv_cust: np.ndarray,
    inv_week: np.ndarray,
    gap_weeks: np.ndarray,
    cust: dict[str, Any],
    active: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-buy each staple with probability 1 - exp(-gap / interval) at every visit."""
    n_staples = np.array([len(s) for s in cust["staples"]])
    flat_prod = np.concatenate(
        [np.array(s, dtype=int) for s in cust["staples"]] + [np.zeros(0, int)]
    )
    flat_int = np.concatenate([np.array(s) for s in cust["intervals"]] + [np.zeros(0)])
    offsets = np.r_[0, np.cumsum(n_staples)]
    known = inv_cust >= 0
    inv_idx = np.flatnonzero(known)
    per = n_staples[inv_cust[inv_idx]]
    pair_inv = np.repeat(inv_idx, per)
    start = offsets[inv_cust[pair_inv]]
    within = np.arange(len(pair_inv)) - np.repeat(np.cumsum(per) - per, per)
    pair_slot = start + within
    prob = 1.0 - np.exp(-gap_weeks[pair_inv] / flat_int[pair_slot])
    prod = flat_prod[pair_slot]
    keep = (rng.random(len(pair_inv)) < prob) & active[prod, inv_week[pair_inv]]
    return pair_inv[keep], prod[keep]


def _assemble(
    rng: np.random.Generator,
    config: GeneratorConfig,
    line_inv: np.ndarray,
    line_prod: np.ndarray,
    inv_cust: np.ndarray,
    inv_week: np.ndarray,
    inv_ts: np.ndarray,
    cust: dict[str, Any],
    products: dict[str, np.ndarray],
    price_factor: np.ndarray,
) -> pd.DataFrame:
    n_inv = len(inv_cust)
    # Invoice numbers follow time, like a real till.
    by_time = np.argsort(inv_ts, kind="stable")
    inv_number = np.empty(n_inv, dtype=np.int64)
    inv_number[by_time] = 536365 + np.arange(n_inv)
    cust_of_line = inv_cust[line_inv]
    wholesale = np.where(cust_of_line >= 0, cust["wholesale"][np.maximum(cust_of_line, 0)], False)
    qty = np.where(
        wholesale,
        rng.choice([6, 12, 12, 24, 48], size=len(line_inv)),
        1 + rng.poisson(0.45, size=len(line_inv)),
    )
    price = np.round(products["price"][line_prod] * price_factor[line_prod, inv_week[line_inv]], 2)
    countries = np.where(
        rng.random(n_inv) < 0.93,
        "United States",
        rng.choice(["Canada", "United Kingdom", "Australia", "Mexico"], size=n_inv),
    )
    cust_country = {}  # a customer keeps one country
    cust_ids = np.where(inv_cust >= 0, cust["id"][np.maximum(inv_cust, 0)], -1)
    first_country = pd.Series(countries).groupby(cust_ids).first()
    cust_country = first_country.to_dict()
    inv_country = np.where(
        cust_ids >= 0, pd.Series(cust_ids).map(cust_country).to_numpy(), countries
    )
    tx = pd.DataFrame(
        {
            "invoice": inv_number[line_inv].astype(str),
            "stock_code": products["code"][line_prod],
            "description": products["desc"][line_prod],
            "quantity": qty.astype(np.int64),
            "invoice_date": inv_ts[line_inv],
            "unit_price": price,
            "customer_id": np.where(cust_of_line >= 0, cust_ids[line_inv].astype(str), ""),
            "country": inv_country[line_inv],
            "_inv": line_inv,
        }
    )
    # Postage on a share of invoices (mostly international ones).
    intl = inv_country != "United States"
    post_inv = np.flatnonzero(intl | (rng.random(n_inv) < 0.03))
    post = pd.DataFrame(
        {
            "invoice": inv_number[post_inv].astype(str),
            "stock_code": "POST",
            "description": "POSTAGE",
            "quantity": 1,
            "invoice_date": inv_ts[post_inv],
            "unit_price": 18.0,
            "customer_id": np.where(inv_cust[post_inv] >= 0, cust_ids[post_inv].astype(str), ""),
            "country": inv_country[post_inv],
            "_inv": post_inv,
        }
    )
    tx = pd.concat([tx, post], ignore_index=True)
    # Cancellations: a C invoice reverses some lines of an earlier invoice a few days later.
    cancelled = np.flatnonzero(rng.random(n_inv) < config.cancel_rate)
    cand = tx[tx["_inv"].isin(cancelled)]
    cand = cand[rng.random(len(cand)) < 0.7]
    end = np.datetime64(pd.Timestamp(config.end_date) + pd.Timedelta(hours=23, minutes=59))
    cdate = cand["invoice_date"].to_numpy() + rng.integers(10, 60 * 24 * 10, size=len(cand)).astype(
        "timedelta64[m]"
    )
    cancel = cand.assign(
        invoice="C" + cand["invoice"],
        quantity=-cand["quantity"],
        invoice_date=np.minimum(cdate, end),
    )
    tx = pd.concat([tx, cancel], ignore_index=True)
    tx = _add_dirt(rng, config, tx)
    tx = tx.sort_values(["invoice_date", "invoice"], kind="stable").drop(columns="_inv")
    return tx.reset_index(drop=True)


def _add_dirt(rng: np.random.Generator, config: GeneratorConfig, tx: pd.DataFrame) -> pd.DataFrame:
    """Realistic export noise that ingestion must catch: duplicates, blanks, zero prices."""
    n = len(tx)
    k = int(n * config.dirt_rate)
    if k == 0:
        return tx
    dup = tx.iloc[rng.choice(n, size=k, replace=False)]
    tx = pd.concat([tx, dup], ignore_index=True)
    blank = rng.choice(len(tx), size=k, replace=False)
    tx.loc[blank, "description"] = ""
    zero = rng.choice(len(tx), size=max(1, k // 4), replace=False)
    tx.loc[zero, "unit_price"] = 0.0
    return tx


def _customer_table(
    rng: np.random.Generator,
    config: GeneratorConfig,
    cust: dict[str, Any],
    start: pd.Timestamp,
    week_starts: pd.DatetimeIndex,
) -> pd.DataFrame:
    n = len(cust["id"])
    join = cust["join_week"]
    signup = start + pd.to_timedelta(join * 7 + rng.integers(0, 7, size=n), unit="D")
    signup = signup - pd.to_timedelta(
        np.where(join == 0, rng.integers(1, 900, size=n), 0), unit="D"
    )
    opted_sale = rng.random(n) < 0.10
    opted_pers = (rng.random(n) < 0.04) | (opted_sale & (rng.random(n) < 0.3))
    missing = rng.random(n) < config.missing_consent_share
    updated = signup + pd.to_timedelta(rng.integers(0, 400, size=n), unit="D")
    updated = updated.where(updated <= week_starts[-1], week_starts[-1])
    return pd.DataFrame(
        {
            "customer_id": cust["id"].astype(str),
            "region": cust["state"],
            "signup_date": signup,
            "opted_out_sale": pd.Series(opted_sale, dtype="boolean").where(~missing),
            "opted_out_personalization": pd.Series(opted_pers, dtype="boolean").where(~missing),
            "consent_updated_at": pd.Series(updated).where(~missing),
        }
    )


def _product_table(
    rng: np.random.Generator,
    products: dict[str, np.ndarray],
    price_factor: np.ndarray,
    markdown_count: np.ndarray,
    weight: np.ndarray,
    week_starts: pd.DatetimeIndex,
) -> pd.DataFrame:
    n_weeks = len(week_starts)
    n = len(products["code"])
    start = week_starts[0]
    launch = start + pd.to_timedelta(products["launch_week"] * 7, unit="D")
    disc_week = products["disc_week"]
    discontinued = disc_week <= n_weeks
    disc_date = pd.Series(start + pd.to_timedelta(np.minimum(disc_week, n_weeks) * 7 - 1, unit="D"))
    # Inventory: about eight weeks of cover, a tenth of the range in surplus, zero once gone.
    recent = weight[:, -8:].mean(axis=1)
    cover = np.where(rng.random(n) < 0.1, rng.uniform(25, 60, size=n), rng.uniform(3, 12, size=n))
    inventory = np.round(recent / max(recent.mean(), 1e-9) * 20 * cover).astype(np.int64)
    inventory = np.where(discontinued, 0, inventory)
    return pd.DataFrame(
        {
            "stock_code": products["code"],
            "description": products["desc"],
            "category": [CATEGORIES[c].name for c in products["cat"]],
            "price": products["price"],
            "markdown_count": markdown_count[:, -1].astype(np.int64),
            "inventory_on_hand": inventory,
            "launch_date": launch,
            "discontinue_date": disc_date.where(discontinued),
        }
    )
