"""Scoring forecasts and recommendation lists beside every baseline (validation and backtest)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shelfops.data.consent import personalizable_customers
from shelfops.evaluation.metrics import (
    DemandEval,
    demand_metrics,
    discover_list_metrics,
    discovery_metrics,
    naive_scale,
    recs_metrics,
)
from shelfops.models.baselines import item_popularity, personal_frequency, tifuknn, wide_panel
from shelfops.models.recs import RecsModel, TrainingSlice

WEEK = pd.Timedelta(days=7)


def demand_eval_inputs(panel: pd.DataFrame, cutoff: pd.Timestamp, codes: list[str]) -> DemandEval:
    """RMSSE scales (training naive error from first sale) and revenue weights (last 13 weeks).

    Args:
        panel: Weekly panel.
        cutoff: Forecast origin.
        codes: Evaluated products.

    Returns:
        Scales and weights.
    """
    wide = wide_panel(panel, cutoff).reindex(codes)
    scales = pd.Series([naive_scale(r[~np.isnan(r)]) for r in wide.to_numpy()], index=codes)
    recent = panel[(panel["week_start"] < cutoff) & (panel["week_start"] >= cutoff - 13 * WEEK)]
    rev = recent.groupby(recent["stock_code"].astype(str))["revenue"].sum()
    return DemandEval(scales=scales, weights=rev.reindex(codes).fillna(0.0))


def eval_products(panel: pd.DataFrame, origin: pd.Timestamp) -> list[str]:
    """Products evaluated at ``origin``: those that sold in the 13 weeks before it."""
    recent = panel[(panel["week_start"] < origin) & (panel["week_start"] >= origin - 13 * WEEK)]
    sold = recent.groupby(recent["stock_code"].astype(str))["units"].sum()
    return sorted(sold[sold > 0].index)


def score_demand(
    forecasts: dict[str, pd.DataFrame],
    panel: pd.DataFrame,
    origin: pd.Timestamp,
    horizon: int,
    label_end: pd.Timestamp,
    codes: list[str],
) -> dict[str, dict[str, Any]]:
    """Score each named forecast on the weeks from ``origin`` for ``codes``.

    At most ``horizon`` weeks, none on or after ``label_end``; unsold weeks count as zero.
    """
    weeks_end = min(origin + horizon * WEEK, label_end)
    act = panel[(panel["week_start"] >= origin) & (panel["week_start"] < weeks_end)]
    act = act.assign(stock_code=act["stock_code"].astype(str))[
        ["stock_code", "week_start", "units"]
    ]
    ev = demand_eval_inputs(panel, origin, codes)
    out = {}
    for name, fr in forecasts.items():
        fr = fr[fr["week_start"] < weeks_end].assign(
            stock_code=lambda f: f["stock_code"].astype(str)
        )
        fr = fr.merge(act, on=["stock_code", "week_start"], how="left")
        fr["actual"] = fr["units"].fillna(0.0)
        out[name] = demand_metrics(fr, ev)
    return out


def score_recs(
    lines: pd.DataFrame,
    sl: TrainingSlice,
    model: RecsModel | None,
    k: int = 10,
    customers: pd.DataFrame | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Metrics of the model (when given) and every baseline on a slice's first baskets.

    Args:
        lines: Purchase lines.
        sl: The slice (targets of consenting customers, item statistics).
        model: The recommender, or None for the baselines only.
        k: List length.
        customers: The customers table; TIFUKNN borrows only from those who allow
            personalization (without it, only from the slice's own customers).

    Returns:
        ``({name: metrics}, the model's recommendations)``; the model's metrics also say what
        giving its last places to new popular items would do (:func:`discovery_metrics`), and
        how its discover list scores as a list of its own (:func:`discover_list_metrics`).
    """
    stats = sl.stats
    allowed = [stats.items[i] for i in np.flatnonzero(stats.recommendable)]
    custs = sorted(sl.targets)
    past = lines[(lines["invoice_date"] < sl.cutoff) & lines["customer_id"].isin(set(custs))]
    history = {str(c): set(g.astype(str)) for c, g in past.groupby("customer_id")["stock_code"]}
    popular = item_popularity(lines, sl.cutoff, 4, allowed)
    ranked: dict[str, dict[str, list[str]]] = {
        "popularity": {c: popular[:k] for c in custs},
        "personal_frequency": personal_frequency(lines, sl.cutoff, custs, k, popular, allowed),
        "tifuknn": tifuknn(
            lines,
            sl.cutoff,
            custs,
            k,
            popular,
            allowed,
            neighbour_pool=personalizable_customers(customers)
            if customers is not None
            else set(custs),
        ),
    }
    recs: dict[str, list[Any]] = {}
    if model is not None:
        recs = model.recommend(sl.rows, k=k, now=sl.cutoff)
        ranked = {"model": {c: [r.stock_code for r in v] for c, v in recs.items()}, **ranked}
    size = int(stats.recommendable.sum())
    scores = {name: recs_metrics(r, sl.targets, history, size, k) for name, r in ranked.items()}
    if model is not None:
        scores["model"] |= discovery_metrics(ranked["model"], sl.targets, history, popular, k)
        discover = model.recommend(sl.rows, k=k, now=sl.cutoff, discover=True)
        scores["model"] |= discover_list_metrics(
            {c: [r.stock_code for r in v] for c, v in discover.items()}, sl.targets, history, k
        )
    return scores, recs
