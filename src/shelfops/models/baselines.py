"""Strong, simple baselines that every model is reported beside (DESIGN.md evaluation protocol).

Demand baselines read the weekly panel (``stock_code, week_start, units``) strictly before the
forecast origin; recommendation baselines read purchase lines strictly before the cutoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

DEMAND_BASELINES: tuple[str, ...] = ("naive", "seasonal_naive", "ma4", "ma13")
RECS_BASELINES: tuple[str, ...] = ("popularity", "personal_frequency", "tifuknn")


def wide_panel(panel: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Pivot the weekly panel to products x weeks, keeping weeks strictly before ``end``.

    Weeks before a product's first sale are NaN; weeks after it with no sales are 0.

    Args:
        panel: Weekly panel with ``stock_code``, ``week_start`` and ``units``.
        end: The forecast origin (a Monday); later weeks are dropped.

    Returns:
        A float frame indexed by ``stock_code`` with one column per ``week_start``.
    """
    p = panel[panel["week_start"] < end]
    wide = p.pivot_table(index="stock_code", columns="week_start", values="units", aggfunc="sum")
    if len(wide.columns):
        all_weeks = pd.date_range(wide.columns.min(), end - pd.Timedelta(days=7), freq="7D")
        wide = wide.reindex(columns=all_weeks)
    # Zeros after the first sale; NaN before it.
    started = wide.notna().cumsum(axis=1) > 0
    return wide.fillna(0.0).where(started)


def demand_baselines(
    panel: pd.DataFrame,
    origin: pd.Timestamp,
    products: Iterable[str],
    horizon: int,
) -> dict[str, pd.DataFrame]:
    """Forecast ``horizon`` weeks from ``origin`` with each demand baseline.

    * ``naive``: the last training week.
    * ``seasonal_naive``: the same week 52 weeks earlier (naive when the product is younger).
    * ``ma4`` / ``ma13``: the mean of the last 4 / 13 training weeks since the first sale.

    Args:
        panel: Weekly panel (``stock_code``, ``week_start``, ``units``).
        origin: First forecast week (a Monday); only earlier weeks are used.
        products: Products to forecast.
        horizon: Number of weeks to forecast.

    Returns:
        ``{baseline: frame}`` with ``stock_code``, ``step`` (0-based), ``week_start``, ``forecast``.
    """
    codes = pd.Index(list(products), name="stock_code")
    wide = wide_panel(panel, origin).reindex(codes)
    values = wide.to_numpy(dtype=float)
    n_weeks = values.shape[1]
    steps = np.arange(horizon)

    def last(k: int) -> np.ndarray:
        window = values[:, max(0, n_weeks - k) :] if n_weeks else np.zeros((len(codes), 0))
        with np.errstate(invalid="ignore"):
            m = np.nanmean(window, axis=1) if window.shape[1] else np.zeros(len(codes))
        return np.nan_to_num(m, nan=0.0)

    naive = last(1)
    out: dict[str, np.ndarray] = {
        "naive": np.repeat(naive[:, None], horizon, axis=1),
        "ma4": np.repeat(last(4)[:, None], horizon, axis=1),
        "ma13": np.repeat(last(13)[:, None], horizon, axis=1),
    }
    seasonal = np.repeat(naive[:, None], horizon, axis=1)
    for h in steps:
        lag = 52 * (h // 52 + 1) - h  # weeks back from the origin to the same week last year
        idx = n_weeks - lag
        if 0 <= idx < n_weeks:
            col = values[:, idx]
            seasonal[:, h] = np.where(np.isnan(col), naive, col)
    out["seasonal_naive"] = seasonal
    weeks = origin + pd.to_timedelta(steps * 7, unit="D")
    frames = {}
    for name in DEMAND_BASELINES:
        frames[name] = pd.DataFrame(
            {
                "stock_code": np.repeat(codes.to_numpy(), horizon),
                "step": np.tile(steps, len(codes)),
                "week_start": np.tile(weeks.to_numpy(), len(codes)),
                "forecast": out[name].ravel(),
            }
        )
    return frames


def item_popularity(
    lines: pd.DataFrame, cutoff: pd.Timestamp, weeks: int = 4, allowed: Iterable[str] | None = None
) -> list[str]:
    """Items ranked by recent popularity: invoices in the last ``weeks`` before the cutoff.

    Ties (and items not sold recently) are ordered by invoices over the last 52 weeks.

    Args:
        lines: Purchase lines with ``invoice``, ``stock_code`` and ``invoice_date``.
        cutoff: Only lines strictly before it count.
        weeks: Length of the recent window.
        allowed: Recommendable items; others are dropped (e.g. discontinued ones).

    Returns:
        Item codes, most popular first.
    """
    past = lines[
        (lines["invoice_date"] < cutoff)
        & (lines["invoice_date"] >= cutoff - pd.Timedelta(weeks=52))
    ]
    recent = past[past["invoice_date"] >= cutoff - pd.Timedelta(weeks=weeks)]
    r = recent.groupby("stock_code")["invoice"].nunique()
    y = past.groupby("stock_code")["invoice"].nunique()
    score = pd.DataFrame({"r": r, "y": y}).fillna(0.0)
    if allowed is not None:
        score = score[score.index.isin(set(allowed))]
    score = score.sort_values(["r", "y"], ascending=False, kind="stable")
    return [str(x) for x in score.index]


def personal_frequency(
    lines: pd.DataFrame,
    cutoff: pd.Timestamp,
    customers: Iterable[str],
    k: int,
    popular: list[str],
    allowed: Iterable[str] | None = None,
) -> dict[str, list[str]]:
    """Each customer's most frequently bought items, topped up with popular ones.

    Frequency counts distinct invoices; ties go to the more recently bought item.

    Args:
        lines: Purchase lines with ``invoice``, ``customer_id``, ``stock_code``, ``invoice_date``.
        cutoff: Only lines strictly before it count.
        customers: Customers to recommend for.
        k: Length of each list.
        popular: Popularity ranking used to top lists up.
        allowed: Recommendable items; others are never recommended.

    Returns:
        ``{customer_id: [item, ...]}`` with ``k`` items each (fewer only if the catalogue is tiny).
    """
    wanted = set(customers)
    past = lines[(lines["invoice_date"] < cutoff) & lines["customer_id"].isin(wanted)]
    if allowed is not None:
        past = past[past["stock_code"].isin(set(allowed))]
    g = (
        past.groupby(["customer_id", "stock_code"])
        .agg(n=("invoice", "nunique"), last=("invoice_date", "max"))
        .reset_index()
    )
    g = g.sort_values(["customer_id", "n", "last"], ascending=[True, False, False], kind="stable")
    own = g.groupby("customer_id")["stock_code"].apply(lambda s: list(s.iloc[:k])).to_dict()
    head = popular[: k * 3]
    out: dict[str, list[str]] = {}
    for cust in wanted:
        out[cust] = top_up([str(x) for x in own.get(cust, [])], head, k)
    return out


def top_up(items: list[str], popular: Iterable[str], k: int) -> list[str]:
    """``items`` followed by popular ones it lacks, up to ``k``.

    Args:
        items: The list so far (extended in place).
        popular: Items to add from, best first (read only as far as needed).
        k: List length.

    Returns:
        ``items``, at most ``k`` long.
    """
    seen = set(items)
    for item in popular:
        if len(items) >= k:
            break
        if item not in seen:
            items.append(item)
            seen.add(item)
    return items


def tifuknn_vectors(
    lines: pd.DataFrame,
    cutoff: pd.Timestamp,
    group_size: int = 7,
    within_decay: float = 0.9,
    group_decay: float = 0.7,
) -> tuple[sparse.csr_matrix, list[str], list[str]]:
    """TIFU customer vectors: time-decayed, group-decayed basket averages (Hu et al., 2020).

    A customer's baskets (distinct invoices, oldest first) are cut into groups of
    ``group_size`` counted back from the newest. A group's vector is the mean of its baskets'
    item indicators weighted ``within_decay ** age`` (age 0 for the group's newest basket);
    the customer's vector is the mean of the group vectors weighted ``group_decay ** age``
    (age 0 for the newest group).

    Args:
        lines: Purchase lines with ``invoice``, ``customer_id``, ``stock_code``, ``invoice_date``.
        cutoff: Only lines strictly before it count.
        group_size: Baskets per group.
        within_decay: Decay between baskets of one group.
        group_decay: Decay between groups.

    Returns:
        ``(customers x items matrix, customer ids, item codes)``.
    """
    past = lines[(lines["invoice_date"] < cutoff) & lines["customer_id"].notna()]
    past = past[["customer_id", "invoice", "stock_code", "invoice_date"]].astype(
        {"customer_id": str, "invoice": str, "stock_code": str}
    )
    baskets = (
        past.groupby(["customer_id", "invoice"], sort=False)["invoice_date"].min().reset_index()
    )
    baskets = baskets.sort_values(["customer_id", "invoice_date", "invoice"], kind="stable")
    # age from the newest basket: 0, 1, 2, ...
    age = baskets.groupby("customer_id").cumcount(ascending=False).to_numpy()
    n = baskets.groupby("customer_id")["invoice"].transform("size").to_numpy()
    group = age // group_size
    groups = (n + group_size - 1) // group_size
    # group length: full groups except possibly the oldest one
    glen = np.where(group == groups - 1, n - group * group_size, group_size)
    w = (within_decay ** (age % group_size)) / glen * (group_decay**group) / groups
    baskets["w"] = w
    past = past.drop_duplicates(["customer_id", "invoice", "stock_code"]).merge(
        baskets[["customer_id", "invoice", "w"]], on=["customer_id", "invoice"]
    )
    cust = pd.Categorical(past["customer_id"])
    item = pd.Categorical(past["stock_code"])
    mat = sparse.csr_matrix(
        (past["w"].to_numpy(float), (cust.codes, item.codes)),
        shape=(len(cust.categories), len(item.categories)),
    )
    return mat, [str(c) for c in cust.categories], [str(i) for i in item.categories]


#: Customers scored at once by :func:`tifuknn` (each holds a dense catalogue-wide row or two).
_TIFU_CHUNK = 128


def tifuknn(
    lines: pd.DataFrame,
    cutoff: pd.Timestamp,
    customers: Iterable[str],
    k: int,
    popular: list[str],
    allowed: Iterable[str] | None = None,
    neighbour_pool: Iterable[str] | None = None,
    neighbours: int = 300,
    alpha: float = 0.7,
    group_size: int = 7,
    within_decay: float = 0.9,
    group_decay: float = 0.7,
) -> dict[str, list[str]]:
    """TIFUKNN next-basket baseline: own TIFU vector blended with the nearest customers' vectors.

    Score = ``alpha`` * own vector + (1 - ``alpha``) * mean of the ``neighbours`` most similar
    customers' vectors (cosine similarity of TIFU vectors, the customer excluded). Only
    customers in ``neighbour_pool`` (those who allow personalization) can be neighbours.
    Items are ranked by score (ties to the lower code), then topped up with popular ones.

    Args:
        lines: Purchase lines with ``invoice``, ``customer_id``, ``stock_code``, ``invoice_date``.
        cutoff: Only lines strictly before it count.
        customers: Customers to recommend for.
        k: Length of each list.
        popular: Popularity ranking used to top lists up.
        allowed: Recommendable items; others are never recommended.
        neighbour_pool: Customers whose vectors may be borrowed (default: every buyer).
        neighbours: Nearest customers blended in.
        alpha: Weight of the customer's own vector.
        group_size: Baskets per group (:func:`tifuknn_vectors`).
        within_decay: Decay between baskets of one group.
        group_decay: Decay between groups.

    Returns:
        ``{customer_id: [item, ...]}`` with ``k`` items each (fewer only if the catalogue is tiny).
    """
    wanted = [str(c) for c in customers]
    mat, ids, items = tifuknn_vectors(lines, cutoff, group_size, within_decay, group_decay)
    head = popular[: k * 3]
    row_of = {c: i for i, c in enumerate(ids)}
    pool_set = set(ids) if neighbour_pool is None else {str(c) for c in neighbour_pool}
    pool = np.array([i for i, c in enumerate(ids) if c in pool_set], dtype=np.int64)
    norms = np.sqrt(np.asarray(mat.multiply(mat).sum(axis=1)).ravel())
    unit = sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ mat
    pool_unit = unit[pool].T.tocsc() if len(pool) else None
    allowed_mask = np.ones(len(items), bool)
    if allowed is not None:
        ok = set(allowed)
        allowed_mask = np.array([i in ok for i in items])
    out: dict[str, list[str]] = {}
    targets = [c for c in wanted if c in row_of]
    for c in wanted:
        if c not in row_of:
            out[c] = top_up([], head, k)
    for s in range(0, len(targets), _TIFU_CHUNK):
        chunk = targets[s : s + _TIFU_CHUNK]
        rows = np.array([row_of[c] for c in chunk])
        blend = mat[rows].toarray()  # the customers' own vectors, weighted in place
        blend *= alpha
        if pool_unit is not None and neighbours > 0:
            sim = (unit[rows] @ pool_unit).toarray()
            sim[pool[None, :] == rows[:, None]] = -np.inf  # never one's own neighbour
            n_nb = min(neighbours, max(len(pool) - 1, 0))
            if n_nb > 0:
                nb = np.argpartition(-sim, n_nb - 1, axis=1)[:, :n_nb]
                # every customer's neighbours' mean vector in one sparse product
                pick = sparse.csr_matrix(
                    (
                        np.ones(nb.size),
                        (np.repeat(np.arange(len(chunk)), n_nb), pool[nb].ravel()),
                    ),
                    shape=(len(chunk), mat.shape[0]),
                )
                borrowed = (pick @ mat).toarray()
                borrowed /= n_nb  # in place: a chunk's dense rows are the run's largest arrays
                borrowed *= 1 - alpha
                blend += borrowed
                del borrowed
        blend[:, ~allowed_mask] = 0.0
        for j, c in enumerate(chunk):
            score = blend[j]
            cand = np.flatnonzero(score > 0)
            if len(cand) > k:  # only the k best (and their ties) need ordering
                kth = np.partition(score[cand], len(cand) - k)[len(cand) - k]
                cand = cand[score[cand] >= kth]
            order = cand[np.lexsort((cand, -score[cand]))][:k]
            out[c] = top_up([items[i] for i in order], head, k)
    return out


def baseline_from_features(
    name: str, row: dict[str, Any], horizon: int, history_weeks: int = 52
) -> np.ndarray:
    """A demand baseline forecast computed from one ``demand_v1`` feature row.

    Serving uses this as the fallback when the model's inputs cannot be read fresh; it matches
    :func:`demand_baselines` (see :func:`baselines_from_columns`).

    Args:
        name: One of :data:`DEMAND_BASELINES`.
        row: The feature row (as returned by the online store).
        horizon: Weeks to forecast.
        history_weeks: Length of the history feature.

    Returns:
        ``horizon`` non-negative forecasts.
    """
    cols = {k: [v] for k, v in row.items()}
    return baselines_from_columns(name, cols, horizon, history_weeks)[0]


def _column(cols: Mapping[str, Any], name: str, n: int) -> np.ndarray:
    values = cols.get(name)
    if values is None:
        return np.zeros(n)
    try:  # numbers and None (online rows) convert directly
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError):  # anything else the way pandas coerces it
        out = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    return np.nan_to_num(out)


def baselines_from_columns(
    name: str, cols: Mapping[str, Any], horizon: int, history_weeks: int = 52
) -> np.ndarray:
    """A demand baseline forecast for each ``demand_v1`` row, from the rows' features.

    It matches :func:`demand_baselines`: ``units_history_52w`` holds the 52 weeks before the
    origin, oldest first, so the seasonal-naive value for step ``s`` is its ``s``-th entry
    (products younger than a year get the naive forecast).

    Args:
        name: One of :data:`DEMAND_BASELINES`.
        cols: Feature columns (name to one value per row): a frame or a mapping of sequences.
        horizon: Weeks to forecast.
        history_weeks: Length of the history feature.

    Returns:
        ``(rows, horizon)`` non-negative forecasts.
    """
    n = len(cols) if isinstance(cols, pd.DataFrame) else len(next(iter(cols.values()), []))
    naive = _column(cols, "units_last_week", n)
    if name == "ma4":
        level = _column(cols, "units_mean_4w", n)
    elif name == "ma13":
        level = _column(cols, "units_mean_13w", n)
    elif name in ("naive", "seasonal_naive"):
        level = naive
    else:
        raise ValueError(f"unknown demand baseline {name!r}; expected one of {DEMAND_BASELINES}")
    out = np.repeat(np.maximum(level, 0.0)[:, None], horizon, axis=1)
    if name == "seasonal_naive":
        age = _column(cols, "weeks_since_first_sale", n)
        steps = np.arange(horizon) % history_weeks
        for i, raw in enumerate(cols.get("units_history_52w", [None] * n)):
            history = [] if raw is None else list(raw)
            if age[i] >= history_weeks and len(history) >= history_weeks:
                out[i] = np.maximum(np.asarray(history, float)[steps], 0.0)
    return out
