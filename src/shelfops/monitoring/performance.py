"""Performance where the truth has arrived: forecast accuracy, recommendation hit rate, adoption.

Forecast accuracy is ``1 - WAPE`` of the logged P50 forecasts against the actual units posted as
feedback, per product-week (the latest forecast made before the week started; a week with no
such forecast uses the earliest one made). It is compared with the validated level recorded in
the registry metadata (``1 - metrics.wape`` on the validation window).

Recommendations: services post ``bought`` events for what a customer bought after a
recommendation (recommended or not) with that request's id, and ``viewed``/``added_to_cart`` for
recommended items they acted on. *Hit rate* is the share of requests followed by a purchase in
which at least one bought item was recommended (the serving twin of HR@10); *adoption* is the
share of all logged recommendation requests with any action on a recommended item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Accuracy:
    """Forecast accuracy on arrived actuals."""

    pairs: int
    wape: float | None
    accuracy: float | None
    by_week: pd.DataFrame  # week_start, pairs, wape, accuracy


def logged_forecasts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Every product-week forecast in the demand prediction log (degraded answers left out).

    Args:
        predictions: Prediction log rows of the demand model (``ts``, ``outputs`` JSON with
            ``forecasts``, ``degraded``).

    Returns:
        ``ts, stock_code, week_start`` (UTC), ``p10, p50, p90`` per logged forecast week.
    """
    cols = ["ts", "stock_code", "week_start", "p10", "p50", "p90"]
    rows: list[dict[str, Any]] = []
    if predictions.empty:
        return pd.DataFrame(columns=cols)
    for ts, raw, degraded in zip(
        predictions["ts"], predictions["outputs"], predictions["degraded"], strict=True
    ):
        if degraded:
            continue
        for f in json.loads(raw).get("forecasts", []):
            if f.get("p50") is None:
                continue
            rows.append(
                {
                    "ts": ts,
                    "stock_code": str(f["stock_code"]),
                    "week_start": pd.Timestamp(f["week_start"], tz="UTC"),
                    "p10": None if f.get("p10") is None else float(f["p10"]),
                    "p50": float(f["p50"]),
                    "p90": None if f.get("p90") is None else float(f["p90"]),
                }
            )
    return pd.DataFrame(rows, columns=cols)


def forecast_pairs(predictions: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Join logged demand forecasts with arrived actuals.

    Args:
        predictions: Prediction log rows of the demand model (``ts``, ``outputs`` JSON with
            ``forecasts``).
        actuals: Feedback rows of kind ``actual`` (``stock_code``, ``week_start``, ``units``).

    Returns:
        ``stock_code, week_start, forecast, actual`` per product-week.
    """
    cols = ["stock_code", "week_start", "forecast", "actual"]
    if predictions.empty or actuals.empty:
        return pd.DataFrame(columns=cols)
    fc = logged_forecasts(predictions).rename(columns={"p50": "forecast"})
    if fc.empty:
        return pd.DataFrame(columns=cols)
    fc["before"] = fc["ts"] <= fc["week_start"]
    # Prefer forecasts made before the week (latest of them), else the earliest made.
    fc["rank_ts"] = np.where(fc["before"], fc["ts"].astype("int64"), -fc["ts"].astype("int64"))
    fc = fc.sort_values(["before", "rank_ts"]).groupby(["stock_code", "week_start"]).tail(1)
    act = actuals.copy()
    act["stock_code"] = act["stock_code"].astype(str)
    act["week_start"] = pd.to_datetime(act["week_start"], utc=True)
    act = act.sort_values("received_at").groupby(["stock_code", "week_start"]).tail(1)
    act = act.rename(columns={"units": "actual"})[["stock_code", "week_start", "actual"]]
    joined = fc.merge(act, on=["stock_code", "week_start"], how="inner")
    return joined[cols].sort_values(["week_start", "stock_code"]).reset_index(drop=True)


def _wape(actual: np.ndarray, forecast: np.ndarray) -> float | None:
    total = float(np.abs(actual).sum())
    if total <= 0:
        return None
    return float(np.abs(actual - forecast).sum() / total)


def forecast_accuracy(pairs: pd.DataFrame, weeks: int | None = None) -> Accuracy:
    """Rolling WAPE and accuracy (``1 - WAPE``) over the last ``weeks`` weeks with actuals.

    Args:
        pairs: From :func:`forecast_pairs`.
        weeks: Only the newest weeks (default: all).

    Returns:
        The overall figures and one row per week.
    """
    if pairs.empty:
        return Accuracy(0, None, None, pd.DataFrame(columns=["week_start", "pairs", "wape"]))
    by_week = (
        pairs.groupby("week_start")
        .apply(
            lambda g: pd.Series(
                {"pairs": len(g), "wape": _wape(g["actual"].to_numpy(), g["forecast"].to_numpy())}
            ),
            include_groups=False,
        )
        .reset_index()
    )
    by_week["accuracy"] = 1.0 - by_week["wape"].astype(float)
    recent = pairs
    if weeks is not None:
        last = sorted(pairs["week_start"].unique())[-weeks:]
        recent = pairs[pairs["week_start"].isin(last)]
    w = _wape(recent["actual"].to_numpy(dtype=float), recent["forecast"].to_numpy(dtype=float))
    return Accuracy(len(recent), w, None if w is None else 1.0 - w, by_week)


@dataclass(frozen=True)
class RecsOutcome:
    """Recommendation hit rate and adoption."""

    requests: int
    requests_with_purchase: int
    hit_rate: float | None
    adoption: float | None
    by_day: pd.DataFrame  # day, requests, adoption, hit_rate


def recs_outcomes(predictions: pd.DataFrame, feedback: pd.DataFrame) -> RecsOutcome:
    """Hit rate and adoption of logged recommendation requests.

    Args:
        predictions: Prediction log rows of the recommendation model (``outputs`` JSON with
            ``items``).
        feedback: Feedback rows of kind ``recommendation``.

    Returns:
        The overall figures and one row per day of request.
    """
    empty = pd.DataFrame(columns=["day", "requests", "adoption", "hit_rate"])
    if predictions.empty:
        return RecsOutcome(0, 0, None, None, empty)
    recs = predictions[["request_id", "ts", "outputs"]].copy()
    recs["items"] = [
        {str(i["stock_code"]) for i in json.loads(o).get("items", [])} for o in recs["outputs"]
    ]
    recs = recs.drop_duplicates("request_id", keep="last").set_index("request_id")
    fb = feedback[feedback["request_id"].isin(recs.index)] if not feedback.empty else feedback
    adopted: set[str] = set()
    bought: dict[str, set[str]] = {}
    for rid, code, action in zip(
        fb.get("request_id", []), fb.get("stock_code", []), fb.get("action", []), strict=True
    ):
        rid, code = str(rid), str(code)
        if code in recs.at[rid, "items"]:
            adopted.add(rid)
        if action == "bought":
            bought.setdefault(rid, set()).add(code)
    hits = {rid for rid, codes in bought.items() if codes & recs.at[rid, "items"]}
    frame = pd.DataFrame(
        {
            "day": recs["ts"].dt.floor("D").to_numpy(),
            "adopted": recs.index.isin(list(adopted)),
            "purchase": recs.index.isin(list(bought)),
            "hit": recs.index.isin(list(hits)),
        }
    )
    by_day = (
        frame.groupby("day")
        .apply(
            lambda g: pd.Series(
                {
                    "requests": len(g),
                    "adoption": g["adopted"].mean(),
                    "hit_rate": g.loc[g["purchase"], "hit"].mean() if g["purchase"].any() else None,
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    n = len(recs)
    with_purchase = len(bought)
    return RecsOutcome(
        requests=n,
        requests_with_purchase=with_purchase,
        hit_rate=len(hits) / with_purchase if with_purchase else None,
        adoption=len(adopted) / n if n else None,
        by_day=by_day,
    )
