"""In-process traffic through the real Predictors, logged as the services log it.

Used by ``shelfops monitor simulate`` (traffic on the quickstart's own models and features, so
``monitor check`` and ``monitor report`` have something to read before the services run) and by
the drift tests. No HTTP server is involved: each request is one product (demand) or one customer
(recs), predicted in batches for speed and logged one record per request.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pandas as pd

from shelfops.monitoring.cost import CostMeter
from shelfops.monitoring.store import PredictionLogger, demand_outputs, recs_outputs


def scalar_features(row: dict[str, Any], features: list[str]) -> dict[str, Any]:
    """The flat numeric/string inputs of a feature row (what services pass to ``log``)."""
    out: dict[str, Any] = {}
    for f in features:
        v = row.get(f)
        if isinstance(v, str | bool | int | float | np.integer | np.floating) and not (
            isinstance(v, float | np.floating) and not np.isfinite(v)
        ):
            out[f] = v.item() if isinstance(v, np.generic) else v
    return out


def log_demand_requests(
    predictor: Any,
    rows: pd.DataFrame,
    logger: PredictionLogger,
    *,
    ts: pd.Timestamp | None = None,
    model: str = "demand",
    version: str = "",
    cost: CostMeter | None = None,
    origin: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Forecast ``rows`` with a ``DemandPredictor`` and log one record per product.

    Args:
        predictor: The demand Predictor.
        rows: ``demand_v1`` rows with ``stock_code`` (and ``event_timestamp`` or ``origin``).
        logger: Where records go.
        ts: Logged prediction time (default: now).
        model: Logged model name.
        version: Logged model version.
        cost: Meter to count the predictions on.
        origin: Forecast origin when rows carry no ``event_timestamp``.

    Returns:
        The forecasts.
    """
    started = time.perf_counter()
    forecasts = predictor.predict(rows, origin=origin)
    per_request_ms = (time.perf_counter() - started) * 1000.0 / max(len(rows), 1)
    by_code = dict(tuple(forecasts.groupby(forecasts["stock_code"].astype(str))))
    features = list(predictor.features)
    for row in rows.to_dict(orient="records"):
        code = str(row["stock_code"])
        fc = by_code.get(code)
        if fc is None:
            continue
        logger.log(
            model,
            version,
            uuid.uuid4().hex,
            None,
            {"stock_code": code, **scalar_features(row, features)},
            demand_outputs(fc),
            False,
            per_request_ms,
            ts=None if ts is None else ts.to_pydatetime(),
        )
    if cost is not None:
        cost.observe(len(rows))
    return forecasts


def log_recs_requests(
    predictor: Any,
    rows: pd.DataFrame,
    logger: PredictionLogger,
    *,
    ts: pd.Timestamp | None = None,
    model: str = "recs",
    version: str = "",
    k: int = 10,
    now: pd.Timestamp | None = None,
    cost: CostMeter | None = None,
) -> dict[str, dict[str, Any]]:
    """Recommend for ``rows`` with a ``RecsPredictor`` and log one record per customer.

    Args:
        predictor: The recommendation Predictor.
        rows: ``recs_v1`` rows with ``customer_id``.
        logger: Where records go.
        ts: Logged prediction time (default: now).
        model: Logged model name.
        version: Logged model version.
        k: List length.
        now: Scoring time passed to the predictor.
        cost: Meter to count the predictions on.

    Returns:
        ``{customer_id: {"request_id", "items"}}``.
    """
    started = time.perf_counter()
    recs = predictor.predict(rows, k=k, now=now)
    per_request_ms = (time.perf_counter() - started) * 1000.0 / max(len(rows), 1)
    features = list(predictor.features)
    out: dict[str, dict[str, Any]] = {}
    for row in rows.to_dict(orient="records"):
        cid = str(row["customer_id"])
        items = recs.get(cid, recs.get(row["customer_id"], []))
        rid = uuid.uuid4().hex
        degraded = all(i.get("score") is None for i in items) if items else True
        logger.log(
            model,
            version,
            rid,
            cid,
            scalar_features(row, features),
            recs_outputs(items),
            degraded,
            per_request_ms,
            ts=None if ts is None else ts.to_pydatetime(),
        )
        out[cid] = {"request_id": rid, "items": [str(i["stock_code"]) for i in items]}
    if cost is not None:
        cost.observe(len(rows))
    return out


def latest_rows(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """The newest row per entity of an offline feature table."""
    return (
        table.sort_values("event_timestamp")
        .groupby(key, observed=True)
        .tail(1)
        .reset_index(drop=True)
    )


def plant_category_shift(
    rows: pd.DataFrame,
    codes_collapse: set[str],
    codes_trend: set[str],
    collapse: float = 0.1,
    trend: float = 3.0,
    unit_features: tuple[str, ...] = (
        "units_last_week",
        "units_mean_4w",
        "units_mean_13w",
        "revenue_13w",
    ),
) -> pd.DataFrame:
    """A planted data drift: one category's sales collapse while a new trend takes off.

    Args:
        rows: ``demand_v1`` rows.
        codes_collapse: Products whose sales fall to ``collapse`` of their level.
        codes_trend: Products whose sales grow ``trend`` times.
        collapse: Factor for the collapsing category.
        trend: Factor for the trending products.
        unit_features: Sales features that move with the level.

    Returns:
        A shifted copy.
    """
    out = rows.copy()
    code = out["stock_code"].astype(str)
    for f in unit_features:
        if f in out:
            out[f] = out[f].astype("float64")
            out.loc[code.isin(codes_collapse), f] *= collapse
            out.loc[code.isin(codes_trend), f] *= trend
    if "zero_share_13w" in out:
        out["zero_share_13w"] = out["zero_share_13w"].astype("float64")
        out.loc[code.isin(codes_collapse), "zero_share_13w"] = np.minimum(
            1.0, out.loc[code.isin(codes_collapse), "zero_share_13w"].astype(float) + 0.5
        )
    return out
