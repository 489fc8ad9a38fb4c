"""Training the demand model strictly before a cutoff, with its validation window."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from shelfops.evaluation.metrics import wrmsse_arrays
from shelfops.evaluation.scoring import demand_eval_inputs, eval_products, score_demand
from shelfops.features.definitions import DEMAND_SERVICE
from shelfops.models.baselines import demand_baselines, wide_panel
from shelfops.models.demand import SEGMENTS, DemandConfig, DemandModel, ValidScore, fit_demand
from shelfops.training.context import WEEK, Context, Progress, demand_rows, feature_rows, utc


def training_origins(
    wide: pd.DataFrame, cutoff: pd.Timestamp, config: DemandConfig
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """The (product, origin) pairs the network trains on, sub-sampled to the row budget.

    Every Monday before ``cutoff`` at least ``config.min_history_weeks`` after the first week
    of data, for products that sold in the 13 weeks before it.

    Args:
        wide: Products x weeks panel up to the cutoff (NaN before a product's first sale).
        cutoff: No origin on or after it.
        config: Row budget, seed and the history required.

    Returns:
        Row positions in ``wide`` and their origins.
    """
    sold13 = wide.fillna(0.0).T.rolling(13, min_periods=1).sum().T  # through week column
    pairs_p, pairs_o = np.nonzero(sold13.to_numpy() > 0)
    origins = pd.DatetimeIndex(wide.columns[pairs_o]) + WEEK
    first_origin = pd.Timestamp(wide.columns[0]) + config.min_history_weeks * WEEK
    keep = (origins < cutoff) & (origins >= first_origin)
    pairs_p, origins = pairs_p[keep], origins[keep]
    budget = int(config.max_train_rows * 1.15)
    if len(pairs_p) > budget:
        rng = np.random.default_rng(config.seed)
        pick = np.sort(rng.choice(len(pairs_p), size=budget, replace=False))
        pairs_p, origins = pairs_p[pick], origins[pick]
    return pairs_p, origins


def train_demand(
    ctx: Context, cutoff: pd.Timestamp, config: DemandConfig, say: Progress
) -> tuple[DemandModel, dict[str, Any]]:
    """Train the demand model strictly before ``cutoff`` with a validation window before it.

    Phase 1 trains on labels before ``cutoff - H`` weeks and early-stops on the forecast made at
    that validation origin; phase 2 refits on all labels before ``cutoff`` for the best epoch
    count. On the validation window, each demand segment whose best baseline beat phase 1 is
    handed to that baseline in the returned model (:func:`choose_fallback`); the gate then
    scores the model with its fallbacks on later origins, never on this window.

    Args:
        ctx: Data context.
        cutoff: First week that must not be read (a Monday).
        config: Hyper-parameters.
        say: Progress messages.

    Returns:
        The refitted model and ``{"validation": {model, baselines}, "rows": ...}``.
    """
    h = config.horizon
    valid_origin = cutoff - h * WEEK
    features = ctx.source.feature_names(DEMAND_SERVICE)
    panel = ctx.panel
    wide_all = wide_panel(panel, ctx.data_end)
    w = wide_all.loc[:, wide_all.columns < cutoff]
    pairs_p, origins = training_origins(w, cutoff, config)
    t0 = time.perf_counter()
    ent = pd.DataFrame(
        {
            "stock_code": w.index.to_numpy()[pairs_p].astype(str),
            "event_timestamp": utc(pd.Series(origins)),
        }
    )
    rows = feature_rows(ctx.source, DEMAND_SERVICE, ent)
    valid_codes = eval_products(panel, valid_origin)
    vrows = demand_rows(ctx, [valid_origin], {valid_origin: valid_codes})
    ctx.timings["demand_features_s"] = time.perf_counter() - t0
    say(f"demand: {len(rows):,} training rows, {len(valid_codes):,} validation products")
    tr = rows[rows["event_timestamp"].dt.tz_localize(None) < valid_origin]
    m1 = fit_demand(
        tr,
        wide_all,
        features,
        valid_origin,
        config,
        valid_rows=vrows,
        valid_end=cutoff,
        valid_score=_wrmsse_score(panel, valid_origin, valid_codes)
        if config.early_stop_wrmsse
        else None,
    )
    say(f"demand: best epoch {m1.history['best_epoch']}, refitting to the cutoff")
    forecasts = {
        "model": m1.predict(vrows),
        **demand_baselines(panel, valid_origin, valid_codes, h),
    }
    val = score_demand(forecasts, panel, valid_origin, h, cutoff, valid_codes)
    segments = choose_fallback(forecasts, panel, valid_origin, h, cutoff)
    model = fit_demand(
        rows, wide_all, features, cutoff, config, epochs=max(1, int(m1.history["best_epoch"]))
    )
    model.history["validation_best_epoch"] = m1.history["best_epoch"]
    model.history["valid_loss"] = m1.history["valid_loss"]
    model.fallback = {k: v["choice"] for k, v in segments.items() if v["choice"] != "model"}
    if model.fallback:
        say(f"demand: baselines forecast the segments {model.fallback}")
    return model, {
        "validation": val,
        "validation_origin": str(valid_origin.date()),
        "training_rows": len(rows),
        "segments": segments,
        "fallback": model.fallback,
    }


def _wrmsse_score(panel: pd.DataFrame, origin: pd.Timestamp, codes: list[str]) -> ValidScore:
    """The validation WRMSSE of point forecasts at ``origin`` (scales and weights as scored)."""
    ev = demand_eval_inputs(panel, origin, codes)

    def score(stock_codes: np.ndarray, point: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
        scales = ev.scales.reindex(stock_codes).to_numpy(dtype=float)
        weights = ev.weights.reindex(stock_codes).fillna(0.0).to_numpy(dtype=float)
        return wrmsse_arrays(y, point, mask, scales, weights)

    return score


#: Fewest products a segment needs on validation before it may fall back to a baseline.
MIN_SEGMENT_PRODUCTS = 30


def choose_fallback(
    forecasts: dict[str, pd.DataFrame],
    panel: pd.DataFrame,
    origin: pd.Timestamp,
    horizon: int,
    label_end: pd.Timestamp,
) -> dict[str, dict[str, Any]]:
    """Per segment, the network or the baseline with the lowest validation WRMSSE.

    A segment with fewer than :data:`MIN_SEGMENT_PRODUCTS` products keeps the network (too few
    to judge).

    Args:
        forecasts: ``{"model": network forecasts (with ``segment``), baseline: forecasts}``.
        panel: Weekly panel.
        origin: The validation origin.
        horizon: Weeks scored.
        label_end: No week on or after it is scored.

    Returns:
        ``{segment: {"products", "model", "best_baseline", "baseline", "choice"}}``.
    """
    model = forecasts["model"]
    out: dict[str, dict[str, Any]] = {}
    for segment in SEGMENTS:
        codes = sorted(set(model.loc[model["segment"] == segment, "stock_code"].astype(str)))
        if not codes:
            continue
        subset = {
            name: f[f["stock_code"].astype(str).isin(set(codes))] for name, f in forecasts.items()
        }
        scores = score_demand(subset, panel, origin, horizon, label_end, codes)
        base = {k: v["wrmsse"] for k, v in scores.items() if k != "model"}
        best = min(base, key=lambda k: base[k])
        better = base[best] < scores["model"]["wrmsse"]
        out[segment] = {
            "products": len(codes),
            "model": scores["model"]["wrmsse"],
            "best_baseline": best,
            "baseline": base[best],
            "choice": best if better and len(codes) >= MIN_SEGMENT_PRODUCTS else "model",
        }
    return out
