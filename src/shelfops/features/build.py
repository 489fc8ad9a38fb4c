"""Feature tables computed from the clean data; they are the Feast offline sources.

Two tables, each row stamped with the moment its values became known:

* ``product_weekly.parquet``: one row per product per week, stamped at the Monday 00:00 UTC after
  the week it summarises, so a point-in-time lookup at a forecast origin (a Monday) sees history
  through the week before it.
* ``customer_behaviour.parquet``: one row per customer per week in which they bought, stamped the
  same way. Customers who opted out of personalization have no rows at all: nothing of theirs is
  read beyond the consent flag.
* ``customer_consent.parquet``: one row per customer with the *current* consent flags, stamped at
  the epoch so every point-in-time lookup sees today's decision (consent governs all use of the
  data, including training on the past).
* ``product_catalog.parquet``: one row per product with the *current* merchandising state
  (inventory, markdowns, discontinued, weeks of cover), stamped at the epoch like consent. It is a
  snapshot for the serving rules only: no model trains on it, so it cannot leak the future.

Weeks run Monday to Sunday, as the evaluation protocol in DESIGN.md requires.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from shelfops.data.consent import personalizable_customers
from shelfops.data.parquet import write_parquet_parts, write_parquet_us

HISTORY_WEEKS = 52
TOP_ITEMS = 30
MARKDOWN_THRESHOLD = 0.95
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def week_start(ts: pd.Series) -> pd.Series:
    """The Monday 00:00 that starts each timestamp's week."""
    return (ts.dt.normalize() - pd.to_timedelta(ts.dt.weekday, unit="D")).astype("datetime64[us]")


def _utc(ts: pd.Series | pd.DatetimeIndex) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ts).tz_localize("UTC").astype("datetime64[us, UTC]"))


def product_sales_lines(transactions: pd.DataFrame) -> pd.DataFrame:
    """Product lines (sales and cancellations) with their week."""
    lines = transactions[transactions["is_product"]]
    return lines.assign(
        week_start=week_start(lines["invoice_date"]),
        revenue=lines["quantity"] * lines["unit_price"],
    )


def weekly_sales(transactions: pd.DataFrame, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """A complete weekly panel per product, from its first sale to the data end.

    Cancellations are netted against sales (a week never goes below zero); ``avg_price`` is the
    revenue-weighted price of that week's sales, carried forward through weeks without sales.

    Args:
        transactions: Clean transactions.
        end: Last week to include (its Monday or any day in it); default the newest event's week.

    Returns:
        Columns ``stock_code, week_start, units, revenue, avg_price``.
    """
    lines = product_sales_lines(transactions)
    if lines.empty:
        return pd.DataFrame(columns=["stock_code", "week_start", "units", "revenue", "avg_price"])
    sales = lines[~lines["is_cancellation"]]
    net = lines.groupby(["stock_code", "week_start"], observed=True).agg(
        units=("quantity", "sum"), revenue=("revenue", "sum")
    )
    gross = sales.groupby(["stock_code", "week_start"], observed=True).agg(
        sold=("quantity", "sum"), sold_revenue=("revenue", "sum")
    )
    weekly = net.join(gross, how="left").reset_index()
    last_week = (
        week_start(pd.Series([end])).iloc[0] if end is not None else weekly["week_start"].max()
    )
    first = sales.groupby("stock_code", observed=True)["week_start"].min()
    weeks = pd.date_range(first.min(), last_week, freq="7D").astype("datetime64[us]")
    codes = first.index.to_numpy()
    grid = pd.DataFrame(
        {
            "stock_code": np.repeat(codes, len(weeks)),
            "week_start": np.tile(weeks.to_numpy(), len(codes)),
        }
    )
    grid = grid[grid["week_start"] >= grid["stock_code"].map(first).to_numpy()]
    panel = grid.merge(weekly, on=["stock_code", "week_start"], how="left")
    panel["units"] = panel["units"].fillna(0.0).clip(lower=0.0).astype("float64")
    panel["revenue"] = panel["revenue"].fillna(0.0).clip(lower=0.0)
    price = panel["sold_revenue"] / panel["sold"].where(panel["sold"] > 0)
    panel["avg_price"] = price.groupby(panel["stock_code"].to_numpy()).ffill()
    panel["stock_code"] = panel["stock_code"].astype("string")
    return panel[["stock_code", "week_start", "units", "revenue", "avg_price"]].reset_index(
        drop=True
    )


def _rolling(mat: np.ndarray, window: int, valid: np.ndarray, fn: str) -> np.ndarray:
    """Rolling mean or max over the last ``window`` columns, counting only valid cells."""
    n_p, n_w = mat.shape
    values = np.where(valid, mat, 0.0 if fn == "mean" else -np.inf)
    out = np.full((n_p, n_w), np.nan)
    if fn == "mean":
        csum = np.cumsum(np.pad(values, ((0, 0), (1, 0))), axis=1)
        ccount = np.cumsum(np.pad(valid.astype(float), ((0, 0), (1, 0))), axis=1)
        lo = np.maximum(np.arange(n_w) - window + 1, 0)
        total = csum[:, 1:] - csum[:, lo]
        count = ccount[:, 1:] - ccount[:, lo]
        out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    else:
        for t in range(n_w):
            out[:, t] = values[:, max(0, t - window + 1) : t + 1].max(axis=1)
        out[~np.isfinite(out)] = np.nan
    return out


def float_lists(matrix: np.ndarray) -> pd.arrays.ArrowExtensionArray:
    """One float32 list per matrix row as an Arrow column (no Python object per row).

    Args:
        matrix: ``(rows, length)`` values.

    Returns:
        A pandas column backed by an Arrow ``list<float>`` array.
    """
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).ravel())
    offsets = pa.array(np.arange(matrix.shape[0] + 1, dtype=np.int32) * matrix.shape[1])
    return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets, flat))


#: Weeks of planned promotions each ``demand_v1`` row carries (known ahead of the forecast).
PROMOTION_WEEKS_AHEAD = 13


def _promotions_ahead(
    promotions: pd.DataFrame, codes: np.ndarray, weeks: np.ndarray, column: str
) -> np.ndarray:
    """``(products, weeks + ahead)`` matrix of a planned promotion count, zero when none."""
    n_p, n_w = len(codes), len(weeks)
    out = np.zeros((n_p, n_w + PROMOTION_WEEKS_AHEAD), dtype=np.float32)
    start = pd.Timestamp(weeks[0])
    p_idx = pd.Index(codes).get_indexer(promotions["stock_code"].astype(str))
    w_idx = ((pd.to_datetime(promotions["week_start"]) - start).dt.days // 7).to_numpy()
    ok = (p_idx >= 0) & (w_idx >= 0) & (w_idx < out.shape[1])
    out[p_idx[ok], w_idx[ok]] = promotions[column].to_numpy(dtype=np.float32)[ok]
    return out


def product_weekly_features(
    panel: pd.DataFrame, promotions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The ``demand_v1`` feature rows: one per product-week, stamped the Monday after the week.

    ``display_stores_ahead`` and ``mailer_stores_ahead`` hold the planned promotions of the
    :data:`PROMOTION_WEEKS_AHEAD` weeks from the stamp on (known-ahead inputs: a retailer plans
    its displays and mailers before the weeks they run); zeros without a promotions table.
    """
    if panel.empty:
        return pd.DataFrame()
    codes = panel["stock_code"].astype(str).unique()
    weeks = np.sort(panel["week_start"].unique())
    code_idx = pd.Index(codes).get_indexer(panel["stock_code"].astype(str))
    week_idx = pd.Index(weeks).get_indexer(panel["week_start"])
    n_p, n_w = len(codes), len(weeks)
    units = np.zeros((n_p, n_w))
    valid = np.zeros((n_p, n_w), dtype=bool)
    price = np.full((n_p, n_w), np.nan)
    revenue = np.zeros((n_p, n_w))
    units[code_idx, week_idx] = panel["units"].to_numpy()
    valid[code_idx, week_idx] = True
    price[code_idx, week_idx] = panel["avg_price"].to_numpy(dtype=float)
    revenue[code_idx, week_idx] = panel["revenue"].to_numpy()
    first = valid.argmax(axis=1)
    mean4, mean13, mean52 = (_rolling(units, w, valid, "mean") for w in (4, 13, 52))
    price_ok = valid & np.isfinite(price)
    max13 = _rolling(np.nan_to_num(price), 13, price_ok, "max")
    ratio = np.where(np.isfinite(price) & (max13 > 0), price / max13, 1.0)
    marked = (ratio < MARKDOWN_THRESHOLD) & price_ok
    markdown_weeks = _rolling(marked.astype(float), 13, valid, "mean") * np.minimum(
        13, np.arange(n_w)[None, :] - first[:, None] + 1
    )
    zero13 = _rolling((units == 0).astype(float), 13, valid, "mean")
    rev13 = _rolling(revenue, 13, valid, "mean") * np.minimum(
        13, np.arange(n_w)[None, :] - first[:, None] + 1
    )
    # float32 before the per-row gather: the (rows, 52) history is the biggest thing built here.
    padded = np.pad(units.astype(np.float32), ((0, 0), (HISTORY_WEEKS - 1, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, HISTORY_WEEKS, axis=1)
    same_week_ly = windows[:, :, 0]  # 51 weeks before t = 52 weeks before the next week
    rows_p, rows_w = np.nonzero(valid)
    stamp = pd.DatetimeIndex(weeks[rows_w]) + pd.Timedelta(days=7)
    if promotions is None or promotions.empty:  # none planned: empty lists
        display = mailer = float_lists(np.zeros((len(rows_p), 0), np.float32))
    else:
        ahead = rows_w[:, None] + 1 + np.arange(PROMOTION_WEEKS_AHEAD)[None, :]
        d_all = _promotions_ahead(promotions, codes, weeks, "display_stores")
        m_all = _promotions_ahead(promotions, codes, weeks, "mailer_stores")
        display = float_lists(d_all[rows_p[:, None], ahead])
        mailer = float_lists(m_all[rows_p[:, None], ahead])
    return pd.DataFrame(
        {
            "stock_code": codes[rows_p],
            "event_timestamp": _utc(stamp),
            "units_last_week": units[rows_p, rows_w].astype("float32"),
            "units_mean_4w": mean4[rows_p, rows_w].astype("float32"),
            "units_mean_13w": mean13[rows_p, rows_w].astype("float32"),
            "units_mean_52w": mean52[rows_p, rows_w].astype("float32"),
            "units_same_week_last_year": np.where(
                rows_w - first[rows_p] >= 51, same_week_ly[rows_p, rows_w], 0.0
            ).astype("float32"),
            "units_history_52w": float_lists(windows[rows_p, rows_w]),
            "zero_share_13w": zero13[rows_p, rows_w].astype("float32"),
            "weeks_since_first_sale": (rows_w - first[rows_p] + 1).astype("int64"),
            "avg_price_last_week": np.nan_to_num(price[rows_p, rows_w]).astype("float32"),
            "price_ratio_13w": ratio[rows_p, rows_w].astype("float32"),
            "markdown_weeks_13w": np.round(markdown_weeks[rows_p, rows_w]).astype("int64"),
            "revenue_13w": rev13[rows_p, rows_w].astype("float32"),
            "display_stores_ahead": display,
            "mailer_stores_ahead": mailer,
        }
    )


def _grouped_rolling_max(values: np.ndarray, groups: pd.Series, window: int) -> np.ndarray:
    """``groupby(groups).rolling(window, min_periods=1).max()`` for rows sorted by group.

    The largest non-missing value among each row and the ``window - 1`` rows before it in the
    same group (NaN when all are missing), computed as ``window`` whole-array passes instead of
    pandas' per-group window bounds (seconds for The Complete Journey's 90,000 products).
    """
    codes = pd.factorize(groups)[0]
    out = values.copy()
    for lag in range(1, min(window, len(values))):
        earlier = np.full(len(values), np.nan)
        same = codes[lag:] == codes[:-lag]
        earlier[lag:] = np.where(same, values[:-lag], np.nan)
        out = np.fmax(out, earlier)
    return out


def _markdown_lines(lines: pd.DataFrame, panel: pd.DataFrame) -> pd.Series:
    """Whether each sale line was bought below 95% of its product's recent full price."""
    ref = panel.sort_values(["stock_code", "week_start"])
    ref = ref[["stock_code", "week_start"]].assign(
        ref=_grouped_rolling_max(ref["avg_price"].to_numpy(float), ref["stock_code"], 13)
    )
    joined = lines[["stock_code", "week_start", "unit_price"]].merge(
        ref, on=["stock_code", "week_start"], how="left"
    )
    return pd.Series(
        (joined["unit_price"] < MARKDOWN_THRESHOLD * joined["ref"]).to_numpy(), index=lines.index
    )


def customer_behaviour_features(
    transactions: pd.DataFrame, customers: pd.DataFrame, products: pd.DataFrame, panel: pd.DataFrame
) -> pd.DataFrame:
    """The behaviour rows of ``recs_v1``: one per customer per week they bought.

    Customers opted out of personalization are left out entirely.
    """
    allowed = personalizable_customers(customers)
    lines = product_sales_lines(transactions)
    lines = lines[~lines["is_cancellation"] & lines["customer_id"].notna()]
    lines = lines[lines["customer_id"].astype(str).isin(allowed)].copy()
    columns = [
        "customer_id",
        "event_timestamp",
        "last_purchase_ts",
        "invoices_total",
        "invoices_90d",
        "monetary_90d",
        "avg_basket_lines",
        "discount_affinity",
        "favourite_category",
        "top_items",
        "top_item_counts",
        "top_item_last_ts",
    ]
    if lines.empty:
        return pd.DataFrame(columns=columns)
    lines["customer_id"] = lines["customer_id"].astype(str)
    lines["stock_code"] = lines["stock_code"].astype(str)
    lines["markdown"] = _markdown_lines(lines, panel)
    category = products.set_index(products["stock_code"].astype(str))["category"].astype(str)
    lines["category"] = lines["stock_code"].map(category).fillna("Unknown")
    lines["ts"] = lines["invoice_date"].astype("datetime64[s]").astype("int64")
    weekly = (
        lines.groupby(["customer_id", "week_start"], observed=True)
        .agg(
            invoices=("invoice", "nunique"),
            n_lines=("stock_code", "size"),
            revenue=("revenue", "sum"),
            markdown=("markdown", "sum"),
            last_ts=("ts", "max"),
        )
        .reset_index()
        .sort_values(["customer_id", "week_start"])
    )
    g = weekly.groupby("customer_id", observed=True)
    weekly["invoices_total"] = g["invoices"].cumsum()
    lines_total = g["n_lines"].cumsum()
    weekly["avg_basket_lines"] = lines_total / weekly["invoices_total"]
    weekly["discount_affinity"] = g["markdown"].cumsum() / lines_total
    rolled = (
        weekly.set_index("week_start")
        .groupby("customer_id", observed=True)[["invoices", "revenue"]]
        .rolling("91D")
        .sum()
        .reset_index()
    )
    weekly["invoices_90d"] = rolled["invoices"].to_numpy()
    weekly["monetary_90d"] = rolled["revenue"].to_numpy()

    # Running item counts per customer: one pass over their weeks, in order.
    per_week_items = (
        lines.groupby(["customer_id", "week_start", "stock_code"], observed=True)
        .agg(n=("invoice", "nunique"), last=("ts", "max"), cat=("category", "first"))
        .reset_index()
        .sort_values(["customer_id", "week_start"])
    )
    top_items, top_counts, top_last, fav = [], [], [], []
    counts: Counter[str] = Counter()
    last_seen: dict[str, int] = {}
    cats: Counter[str] = Counter()
    current = None
    keys = per_week_items[["customer_id", "week_start"]].to_numpy()
    boundaries = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
    codes = per_week_items["stock_code"].to_numpy()
    ns = per_week_items["n"].to_numpy()
    lasts = per_week_items["last"].to_numpy()
    cat_arr = per_week_items["cat"].to_numpy()
    cust_arr = per_week_items["customer_id"].to_numpy()
    bounds = [*boundaries.tolist(), len(per_week_items)]
    for lo, hi in itertools.pairwise(bounds):
        if cust_arr[lo] != current:
            current = cust_arr[lo]
            counts, last_seen, cats = Counter(), {}, Counter()
        for j in range(lo, hi):
            counts[codes[j]] += int(ns[j])
            last_seen[codes[j]] = int(lasts[j])
            cats[cat_arr[j]] += int(ns[j])
        best = heapq.nlargest(TOP_ITEMS, counts.items(), key=lambda kv: (kv[1], last_seen[kv[0]]))
        top_items.append([k for k, _ in best])
        top_counts.append([v for _, v in best])
        top_last.append([last_seen[k] for k, _ in best])
        fav.append(cats.most_common(1)[0][0])
    weekly["top_items"] = top_items
    weekly["top_item_counts"] = top_counts
    weekly["top_item_last_ts"] = top_last
    weekly["favourite_category"] = fav
    weekly["event_timestamp"] = (
        pd.DatetimeIndex(weekly["week_start"]) + pd.Timedelta(days=7)
    ).tz_localize("UTC")
    weekly["last_purchase_ts"] = weekly["last_ts"].astype("int64")
    out = weekly[columns].reset_index(drop=True)
    for col in ("invoices_total", "invoices_90d"):
        out[col] = out[col].astype("int64")
    for col in ("monetary_90d", "avg_basket_lines", "discount_affinity"):
        out[col] = out[col].astype("float32")
    return out


def customer_consent_features(customers: pd.DataFrame) -> pd.DataFrame:
    """Current consent flags per customer, stamped at the epoch (see the module docstring)."""
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype(str).to_numpy(),
            "event_timestamp": pd.DatetimeIndex([EPOCH] * len(customers)).astype(
                "datetime64[us, UTC]"
            ),
            "opted_out_sale": customers["opted_out_sale"].astype(bool).to_numpy(),
            "opted_out_personalization": customers["opted_out_personalization"]
            .astype(bool)
            .to_numpy(),
        }
    )


def product_catalog_features(products: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """Current merchandising state per product, stamped at the epoch (serving rules only).

    Args:
        products: The clean products table (list price, markdowns, inventory, discontinue date).
        panel: The weekly sales panel from :func:`weekly_sales`.

    Returns:
        ``stock_code, event_timestamp, category, inventory_on_hand, markdown_count, discontinued,
        on_clearance, on_promotion, weeks_of_cover``. An item whose last selling week's average
        price was below ``MARKDOWN_THRESHOLD`` of list price is ``on_clearance`` when it has taken
        at least one clearance markdown (``markdown_count`` counts only those) and otherwise
        ``on_promotion`` (an item promo or a sitewide sale such as Black Friday: temporary, not a
        markdown). ``weeks_of_cover`` is inventory over the mean weekly units of the last 13 weeks.
        Where the retailer reports no stock level, ``inventory_on_hand`` and ``weeks_of_cover``
        stay null (unknown, which the serving rules do not read as out of stock).
    """
    data_end = panel["week_start"].max() + pd.Timedelta(days=7) if len(panel) else None
    recent = (
        panel[panel["week_start"] >= data_end - pd.Timedelta(weeks=13)]
        .groupby("stock_code", observed=True)["units"]
        .sum()
        / 13.0
        if data_end is not None
        else pd.Series(dtype="float64")
    )
    last_price = (
        panel.dropna(subset=["avg_price"]).groupby("stock_code", observed=True)["avg_price"].last()
    )
    codes = products["stock_code"].astype(str)
    inventory = pd.to_numeric(products["inventory_on_hand"], errors="coerce")  # NaN: unknown
    list_price = pd.to_numeric(products["price"], errors="coerce").to_numpy(float)
    paid = last_price.reindex(codes).to_numpy(float)
    weekly = recent.reindex(codes).fillna(0.0).to_numpy(float)
    discontinue = pd.to_datetime(products["discontinue_date"], errors="coerce")
    if data_end is not None:
        end_naive = pd.Timestamp(data_end).tz_localize(None)
        discontinued = discontinue.notna() & (discontinue.dt.tz_localize(None) < end_naive)
    else:
        discontinued = discontinue.notna()
    with np.errstate(invalid="ignore", divide="ignore"):
        below_list = np.nan_to_num(paid / list_price, nan=1.0) < MARKDOWN_THRESHOLD
        stock = inventory.to_numpy(float)
        cover = np.where(weekly > 0, stock / np.maximum(weekly, 1e-9), 999.0)
        cover = np.where(np.isnan(stock), np.nan, cover)
    markdowns = (
        pd.to_numeric(products["markdown_count"], errors="coerce").fillna(0).astype("int64")
    ).to_numpy()
    clearance = below_list & (markdowns > 0)
    return pd.DataFrame(
        {
            "stock_code": codes.to_numpy(),
            "event_timestamp": pd.DatetimeIndex([EPOCH] * len(products)).astype(
                "datetime64[us, UTC]"
            ),
            "category": products["category"].fillna("Unknown").astype(str).to_numpy(),
            "inventory_on_hand": inventory.round().astype("Int64").array,
            "markdown_count": markdowns,
            "discontinued": discontinued.to_numpy(bool),
            "on_clearance": clearance,
            "on_promotion": below_list & ~clearance,
            "weeks_of_cover": np.minimum(cover, 999.0).astype("float32"),
        }
    )


@dataclass(frozen=True)
class FeatureTables:
    """Paths of the written feature tables (the Feast file sources)."""

    product_weekly: Path
    customer_behaviour: Path
    customer_consent: Path
    product_catalog: Path


#: Products per block of ``product_weekly`` rows built and written at once.
PRODUCTS_PER_PART = 8000


def product_blocks(panel: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """The panel's rows in blocks of at most ``size`` products (a product never spans two).

    Args:
        panel: Weekly panel.
        size: Products per block.

    Yields:
        Panel rows of each block, in product order of first appearance.
    """
    codes, _ = pd.factorize(panel["stock_code"])
    block = codes // size
    for b in range(int(block.max(initial=-1)) + 1):
        yield panel[block == b]


def build_feature_tables(clean: dict[str, pd.DataFrame], features_dir: Path) -> FeatureTables:
    """Compute and write every feature table from the clean tables.

    Args:
        clean: ``transactions``, ``customers`` and ``products`` from ingestion.
        features_dir: Where the parquet sources live (``Settings().features_dir``).

    Returns:
        The written paths.
    """
    features_dir.mkdir(parents=True, exist_ok=True)
    tx = clean["transactions"]
    panel = weekly_sales(tx)
    paths = FeatureTables(
        features_dir / "product_weekly.parquet",
        features_dir / "customer_behaviour.parquet",
        features_dir / "customer_consent.parquet",
        features_dir / "product_catalog.parquet",
    )
    # The product-week rows (each with a 52-week history) are the biggest table: they are
    # computed and written a block of products at a time (every feature is per product).
    tmp = paths.product_weekly.with_suffix(".tmp.parquet")
    parts = (
        product_weekly_features(part, clean.get("promotions"))
        for part in product_blocks(panel, PRODUCTS_PER_PART)
    )
    write_parquet_parts(parts, tmp)
    if tmp.exists():
        tmp.replace(paths.product_weekly)
    else:  # no sales at all: an empty table with no columns, as before
        write_parquet_us(pd.DataFrame(), paths.product_weekly)
    tables = {
        paths.customer_behaviour: lambda: customer_behaviour_features(
            tx, clean["customers"], clean["products"], panel
        ),
        paths.customer_consent: lambda: customer_consent_features(clean["customers"]),
        paths.product_catalog: lambda: product_catalog_features(clean["products"], panel),
    }
    for path, make in tables.items():
        tmp = path.with_suffix(".tmp.parquet")
        write_parquet_us(make(), tmp)
        tmp.replace(path)
    return paths


def newest_product_rows(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The ``product_weekly`` rows of the newest week: every product's latest features.

    The panel runs from each product's first sale to the data end, so the newest stamp holds one
    row for every product. On The Complete Journey (2.6 million rows, each with a 52-week
    history list) this reads in 1.7 s and 0.5 GB instead of 9 s and 3.9 GB for the whole table.

    Args:
        path: The ``product_weekly.parquet`` table.
        columns: Columns to read (default: all); ``event_timestamp`` is always read.

    Returns:
        The newest week's rows; empty when the table has no rows or no columns.
    """
    newest = newest_panel_stamp(path)
    return pd.DataFrame() if newest is None else product_rows_since(path, newest, columns)


def product_rows_since(
    path: Path, since: pd.Timestamp, columns: list[str] | None = None
) -> pd.DataFrame:
    """The ``product_weekly`` rows stamped at or after ``since``, filtered batch by batch.

    Because the panel is complete (a row every week from a product's first sale to the data
    end), the rows of the last few weeks hold everything a point-in-time read of those weeks
    returns for products, without holding the whole table (and its history lists) in memory.

    Args:
        path: The ``product_weekly.parquet`` table.
        since: Earliest stamp kept (naive times are UTC).
        columns: Columns to read (default: all); ``event_timestamp`` is always read.

    Returns:
        The rows; empty when none is that new or the table has no columns.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    if "event_timestamp" not in schema.names:  # no sales: a table without columns
        return pd.DataFrame()
    wanted = None if columns is None else list(dict.fromkeys([*columns, "event_timestamp"]))
    first = pa.scalar(_utc_stamp(since).to_pydatetime(), schema.field("event_timestamp").type)
    parts = [
        batch.filter(pc.greater_equal(batch["event_timestamp"], first))
        for batch in source.iter_batches(batch_size=65_536, columns=wanted)
    ]
    if not parts:
        return pd.DataFrame(columns=wanted or schema.names)
    return pa.Table.from_batches(parts).to_pandas()


def newest_panel_stamp(path: Path, end: pd.Timestamp | None = None) -> pd.Timestamp | None:
    """The newest ``product_weekly`` stamp, at or before ``end`` when given (None: no such row).

    Every product that has any row by then has one at this stamp (the panel is complete), so
    loading the online store as of ``end`` needs the rows of this stamp only.

    Args:
        path: The ``product_weekly.parquet`` table.
        end: The newest event time of interest (naive times are UTC); None for no limit.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if "event_timestamp" not in pq.ParquetFile(path).schema_arrow.names:
        return None
    stamps = pq.read_table(path, columns=["event_timestamp"])["event_timestamp"]
    if end is not None:
        limit = pa.scalar(_utc_stamp(end).to_pydatetime(), stamps.type)
        stamps = pc.filter(stamps, pc.less_equal(stamps, limit))
    newest = pc.max(stamps)
    return pd.Timestamp(newest.as_py()) if newest.is_valid else None


def _utc_stamp(value: pd.Timestamp) -> pd.Timestamp:
    """``value`` as a UTC timestamp (naive times are taken as UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
