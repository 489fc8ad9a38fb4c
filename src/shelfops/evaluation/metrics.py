"""Evaluation metrics exactly as DESIGN.md's evaluation protocol defines them.

Demand metrics work on long frames of product-weeks; recommendation metrics on ranked lists.
Everything is plain NumPy/pandas so tests can check hand-computed values.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shelfops.models.baselines import top_up

#: The demand metrics every report and table shows, in order.
DEMAND_METRICS = ("wrmsse", "rmsse", "wape", "bias", "coverage_p10_p90")
#: The recommendation metrics every report and table shows, in order.
RECS_METRICS = (
    "recall@10",
    "ndcg@10",
    "hr@10",
    "catalogue_coverage",
    "recall@10_repeat",
    "recall@10_new",
)
#: Discovery slots the backtest measures: the model's last E of 10 places given to the most
#: popular items new to the customer (the trade between recall and explore recall).
DISCOVERY_SLOTS = (2, 4, 6)
#: The model's metrics with discovery slots (:func:`discovery_metrics`), as the backtest reports.
DISCOVERY_METRICS = tuple(
    f"{m}_discovery{e}" for e in DISCOVERY_SLOTS for m in ("recall@10", "ndcg@10", "recall@10_new")
)

#: The model's discover list (``RecsModel.recommend(..., discover=True)``: no regulars), scored
#: as a list of its own: what a "new to you" shelf recalls, beside the main list.
DISCOVER_LIST_METRICS = tuple(
    f"{m}_discover_list" for m in ("recall@10", "ndcg@10", "recall@10_new")
)


def format_metric(value: object) -> str:
    """How reports and tables print a metric: 4 decimals for floats, a dash when missing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Demand
# ------------------------------------------------------------------------------------------------
def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: ``sum|y - f| / sum y``.

    Args:
        actual: Observed units.
        forecast: Point forecast (P50).

    Returns:
        WAPE as a fraction (0.25 means 25%); NaN when there are no sales at all.
    """
    denom = float(np.sum(np.abs(actual)))
    if denom <= 0:
        return float("nan")
    return float(np.sum(np.abs(np.asarray(actual) - np.asarray(forecast))) / denom)


def bias(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Relative forecast bias: ``sum(f - y) / sum y`` (positive means over-forecasting).

    Args:
        actual: Observed units.
        forecast: Point forecast (P50).

    Returns:
        The bias as a fraction; NaN when there are no sales at all.
    """
    denom = float(np.sum(np.abs(actual)))
    if denom <= 0:
        return float("nan")
    return float(np.sum(np.asarray(forecast) - np.asarray(actual)) / denom)


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of observations inside the closed interval ``[lower, upper]`` (P10-P90 coverage).

    Args:
        actual: Observed units.
        lower: Lower quantile (P10).
        upper: Upper quantile (P90).

    Returns:
        The empirical coverage in [0, 1]; NaN for empty input.
    """
    actual = np.asarray(actual)
    if actual.size == 0:
        return float("nan")
    inside = (actual >= np.asarray(lower)) & (actual <= np.asarray(upper))
    return float(np.mean(inside))


def naive_scale(history: np.ndarray) -> float:
    """Mean squared one-step naive error of a training series from its first sale.

    Args:
        history: Weekly units in training order; leading zeros before the first sale are dropped.

    Returns:
        ``mean((y_t - y_{t-1})^2)`` over the series from its first sale; NaN when fewer than two
        points remain.
    """
    y = np.asarray(history, dtype=float)
    nz = np.flatnonzero(y != 0)
    if nz.size == 0:
        return float("nan")
    y = y[nz[0] :]
    if y.size < 2:
        return float("nan")
    return float(np.mean(np.diff(y) ** 2))


def rmsse(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    """Root mean squared scaled error of one product.

    Args:
        actual: Observed units over the horizon.
        forecast: Point forecast over the horizon.
        scale: The product's :func:`naive_scale` from training.

    Returns:
        ``sqrt(mean((y - f)^2) / scale)``; NaN when the scale is zero or undefined.
    """
    if not np.isfinite(scale) or scale <= 0:
        return float("nan")
    err = np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float)
    return float(np.sqrt(np.mean(err**2) / scale))


def wrmsse_arrays(
    actual: np.ndarray,
    forecast: np.ndarray,
    mask: np.ndarray,
    scales: np.ndarray,
    weights: np.ndarray,
) -> float:
    """WRMSSE of forecasts held as ``(products, weeks)`` arrays (as in :func:`demand_metrics`).

    Args:
        actual: Observed units.
        forecast: Point forecasts.
        mask: 1 where a week is scored.
        scales: Each product's :func:`naive_scale`.
        weights: Each product's revenue weight.

    Returns:
        Revenue-weighted mean RMSSE over products with a positive scale and a scored week (the
        plain mean when every weight is zero); NaN when none qualifies.
    """
    n = mask.sum(axis=1)
    mse = ((actual - forecast) ** 2 * mask).sum(axis=1) / np.maximum(n, 1)
    ok = np.isfinite(scales) & (scales > 0) & (n > 0)
    if not ok.any():
        return float("nan")
    per = np.sqrt(mse[ok] / scales[ok])
    w = np.clip(np.nan_to_num(weights[ok]), 0.0, None)
    return float((per * w).sum() / w.sum()) if w.sum() > 0 else float(per.mean())


@dataclass(frozen=True)
class DemandEval:
    """Per-product evaluation inputs: scales and weights computed from the training window."""

    scales: pd.Series  # naive_scale per stock_code
    weights: pd.Series  # revenue in the last 13 training weeks per stock_code


def demand_metrics(frame: pd.DataFrame, ev: DemandEval) -> dict[str, float | int | None]:
    """All demand metrics for one forecaster.

    Args:
        frame: Long frame with ``stock_code``, ``actual``, ``forecast`` (the point forecast) and
            optionally ``p10``/``p90`` (one row per product and horizon week).
        ev: Scales and revenue weights from the training window.

    Returns:
        ``wape``, ``rmsse`` (mean over products), ``wrmsse``, ``bias``, ``coverage_p10_p90``
        (None without quantiles), ``products`` (evaluated) and ``products_scaled`` (with a
        defined RMSSE scale).
    """
    y = frame["actual"].to_numpy(dtype=float)
    f = frame["forecast"].to_numpy(dtype=float)
    sq = (frame["actual"] - frame["forecast"]) ** 2
    mse = sq.groupby(frame["stock_code"]).mean()
    scale = ev.scales.reindex(mse.index)
    ok = scale.notna() & (scale > 0)
    per_product = np.sqrt(mse[ok] / scale[ok])
    w = ev.weights.reindex(per_product.index).fillna(0.0).clip(lower=0.0)
    wsum = float(w.sum())
    wrmsse = float((per_product * w).sum() / wsum) if wsum > 0 else float(per_product.mean())
    cov: float | None = None
    if "p10" in frame and "p90" in frame:
        cov = coverage(y, frame["p10"].to_numpy(float), frame["p90"].to_numpy(float))
    return {
        "wape": wape(y, f),
        "rmsse": float(per_product.mean()) if len(per_product) else float("nan"),
        "wrmsse": wrmsse,
        "bias": bias(y, f),
        "coverage_p10_p90": cov,
        "products": int(frame["stock_code"].nunique()),
        "products_scaled": len(per_product),
    }


# ------------------------------------------------------------------------------------------------
# Recommendations
# ------------------------------------------------------------------------------------------------
def recall_at_k(ranked: Sequence[str], target: set[str], k: int = 10) -> float:
    """Share of the target basket found in the top ``k``: ``|top_k ∩ T| / |T|``.

    Args:
        ranked: Recommended items, best first.
        target: The items actually bought.
        k: Cut-off.

    Returns:
        Recall in [0, 1]; NaN for an empty target.
    """
    if not target:
        return float("nan")
    return len(set(ranked[:k]) & target) / len(target)


def ndcg_at_k(ranked: Sequence[str], target: set[str], k: int = 10) -> float:
    """Binary-relevance NDCG: ``DCG@k / IDCG@k`` with ``1/log2(rank + 1)`` gains.

    Args:
        ranked: Recommended items, best first.
        target: The items actually bought.
        k: Cut-off.

    Returns:
        NDCG in [0, 1]; NaN for an empty target.
    """
    if not target:
        return float("nan")
    dcg = sum(1.0 / np.log2(r + 2) for r, item in enumerate(ranked[:k]) if item in target)
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(target))))
    return float(dcg / idcg)


def hit_at_k(ranked: Sequence[str], target: set[str], k: int = 10) -> float:
    """1.0 when any target item is in the top ``k``, else 0.0.

    Args:
        ranked: Recommended items, best first.
        target: The items actually bought.
        k: Cut-off.

    Returns:
        The hit indicator; NaN for an empty target.
    """
    if not target:
        return float("nan")
    return float(bool(set(ranked[:k]) & target))


def recs_metrics(
    ranked: Mapping[str, Sequence[str]],
    targets: Mapping[str, set[str]],
    history: Mapping[str, set[str]],
    catalogue_size: int,
    k: int = 10,
) -> dict[str, float | int]:
    """All recommendation metrics for one recommender.

    Args:
        ranked: Customer id to ranked recommendations (at least ``k`` where possible).
        targets: Customer id to the item set of their first invoice after the cutoff.
        history: Customer id to the items they bought before the cutoff (for the repeat/new split).
        catalogue_size: Number of recommendable items (for catalogue coverage).
        k: Cut-off.

    Returns:
        ``recall@k``, ``ndcg@k``, ``hr@k``, ``catalogue_coverage``, ``recall@k_repeat`` and
        ``recall@k_new`` (each averaged over customers that have such target items), and the
        number of ``customers`` evaluated.
    """
    rec, ndcg, hit, rec_rep, rec_new = [], [], [], [], []
    shown: set[str] = set()
    for cust, target in targets.items():
        if not target:
            continue
        items = list(ranked.get(cust, []))[:k]
        shown.update(items)
        rec.append(recall_at_k(items, target, k))
        ndcg.append(ndcg_at_k(items, target, k))
        hit.append(hit_at_k(items, target, k))
        past = history.get(cust, set())
        rep, new = target & past, target - past
        if rep:
            rec_rep.append(recall_at_k(items, rep, k))
        if new:
            rec_new.append(recall_at_k(items, new, k))

    def _mean(xs: list[float]) -> float:
        return float(np.mean(xs)) if xs else float("nan")

    return {
        f"recall@{k}": _mean(rec),
        f"ndcg@{k}": _mean(ndcg),
        f"hr@{k}": _mean(hit),
        "catalogue_coverage": len(shown) / catalogue_size if catalogue_size else float("nan"),
        f"recall@{k}_repeat": _mean(rec_rep),
        f"recall@{k}_new": _mean(rec_new),
        "customers": len(rec),
        "customers_with_repeat_targets": len(rec_rep),
        "customers_with_new_targets": len(rec_new),
    }


def with_discovery_slots(
    ranked: Sequence[str], fresh: Iterable[str], k: int, slots: int
) -> list[str]:
    """The top ``k`` of ``ranked`` with its last ``slots`` places given to ``fresh`` items.

    Args:
        ranked: A recommender's list, best first.
        fresh: Items new to the customer, best first (read lazily, only as far as needed).
        k: List length.
        slots: Places given to ``fresh`` (at most ``k``).

    Returns:
        ``ranked[:k - slots]``, then the first ``fresh`` items not already listed, topped up
        from the rest of ``ranked`` when ``fresh`` runs out.
    """
    head = list(ranked[: max(k - slots, 0)])
    return top_up(head, itertools.chain(fresh, ranked[len(head) :]), k)


def discovery_metrics(
    ranked: Mapping[str, Sequence[str]],
    targets: Mapping[str, set[str]],
    history: Mapping[str, set[str]],
    popular: Sequence[str],
    k: int = 10,
    slots: Sequence[int] = DISCOVERY_SLOTS,
) -> dict[str, float]:
    """Recall, NDCG and explore recall when the list's last places go to new popular items.

    The items given to the slots are the most popular items the customer has never bought (their
    whole history, which the evaluation knows): the best a popularity discovery slot can do.
    It measures what explore recall costs in recall on a retailer's data.

    Args:
        ranked: Customer id to the recommender's list, best first.
        targets: Customer id to the item set of their first invoice after the cutoff.
        history: Customer id to the items they bought before the cutoff.
        popular: Recommendable items, most popular first.
        k: Cut-off.
        slots: Numbers of places given to new items.

    Returns:
        ``recall@k_discoveryE``, ``ndcg@k_discoveryE`` and ``recall@k_new_discoveryE`` per
        ``E`` in ``slots``.
    """
    out: dict[str, float] = {}
    for e in slots:
        lists = {
            c: with_discovery_slots(
                ranked.get(c, []), (i for i in popular if i not in history.get(c, ())), k, e
            )
            for c in targets
        }
        m = recs_metrics(lists, targets, history, 0, k)
        for name in (f"recall@{k}", f"ndcg@{k}", f"recall@{k}_new"):
            out[f"{name}_discovery{e}"] = float(m[name])
    return out


def discover_list_metrics(
    lists: Mapping[str, Sequence[str]],
    targets: Mapping[str, set[str]],
    history: Mapping[str, set[str]],
    k: int = 10,
) -> dict[str, float]:
    """Recall, NDCG and explore recall of the discover list, a list of its own.

    Args:
        lists: Customer id to their discover list, best first.
        targets: Customer id to the item set of their first invoice after the cutoff.
        history: Customer id to the items they bought before the cutoff (for explore recall).
        k: Cut-off.

    Returns:
        :data:`DISCOVER_LIST_METRICS`.
    """
    m = recs_metrics(lists, targets, history, 0, k)
    return {
        f"{name}_discover_list": float(m[name])
        for name in (f"recall@{k}", f"ndcg@{k}", f"recall@{k}_new")
    }


def relative_improvement(model: float, baseline: float, lower_is_better: bool) -> float:
    """Relative improvement of a model over a baseline, positive when the model is better.

    Args:
        model: The model's metric.
        baseline: The baseline's metric.
        lower_is_better: True for errors (WRMSSE, WAPE), False for scores (Recall@10).

    Returns:
        ``(baseline - model) / |baseline|`` for errors, ``(model - baseline) / |baseline|`` for
        scores; NaN when the baseline is zero or undefined.
    """
    if not np.isfinite(baseline) or baseline == 0 or not np.isfinite(model):
        return float("nan")
    diff = baseline - model if lower_is_better else model - baseline
    return float(diff / abs(baseline))
