"""Training the demand model strictly before a cutoff, with its validation window."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pandas as pd

from shelfops.evaluation.metrics import wrmsse_arrays
from shelfops.evaluation.scoring import demand_eval_inputs, eval_products, score_demand
from shelfops.features.definitions import DEMAND_SERVICE
from shelfops.models.baselines import demand_baselines, wide_panel
from shelfops.models.demand import (
    SEGMENTS,
    DemandConfig,
    DemandModel,
    ValidScore,
    fit_demand,
    source_name,
)
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
    count. On the validation window (labels before ``cutoff`` only), each demand segment gets
    the combination of phase 1 and the baselines with the lowest WRMSSE
    (:func:`choose_combination`; a fallback is the weight 1 on one baseline), applied to the
    refitted network; the gate then scores the model with its combinations on later origins,
    never on this window.

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
    segments = choose_combination(
        forecasts, panel, valid_origin, h, cutoff, config.combine_with, config.combine_step
    )
    model = fit_demand(
        rows, wide_all, features, cutoff, config, epochs=max(1, int(m1.history["best_epoch"]))
    )
    model.history["validation_best_epoch"] = m1.history["best_epoch"]
    model.history["valid_loss"] = m1.history["valid_loss"]
    model.combination = {k: v["weights"] for k, v in segments.items() if v["choice"] != "model"}
    if model.combination:
        said = ", ".join(f"{k}: {v['choice']}" for k, v in segments.items())
        say(f"demand: forecasts per segment {said}")
    return model, {
        "validation": val,
        "validation_origin": str(valid_origin.date()),
        "training_rows": len(rows),
        "segments": segments,
        "fallback": model.fallback,
        "combination": model.combination,
    }


def _wrmsse_score(panel: pd.DataFrame, origin: pd.Timestamp, codes: list[str]) -> ValidScore:
    """The validation WRMSSE of point forecasts at ``origin`` (scales and weights as scored)."""
    ev = demand_eval_inputs(panel, origin, codes)

    def score(stock_codes: np.ndarray, point: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
        scales = ev.scales.reindex(stock_codes).to_numpy(dtype=float)
        weights = ev.weights.reindex(stock_codes).fillna(0.0).to_numpy(dtype=float)
        return wrmsse_arrays(y, point, mask, scales, weights)

    return score


#: Fewest products a segment needs on validation before it may leave the network alone.
MIN_SEGMENT_PRODUCTS = 30


def combination_grid(members: int, step: float) -> np.ndarray:
    """Every weight vector over ``members`` forecasts on a simplex grid of ``step``.

    Args:
        members: Number of forecasts combined.
        step: Grid step (e.g. 0.1: weights 0, 0.1, ..., 1).

    Returns:
        ``(combinations, members)`` non-negative weights, each row summing to 1, the first row
        all on the first member.
    """
    k = max(1, round(1.0 / step))
    rows = [c for c in itertools.product(range(k, -1, -1), repeat=members) if sum(c) == k]
    return np.asarray(rows, dtype=float) / k


def _aligned(
    forecasts: dict[str, pd.DataFrame], codes: list[str], origin: pd.Timestamp, horizon: int
) -> dict[str, np.ndarray]:
    """Each forecaster's point forecasts as a ``(products, horizon)`` array in ``codes`` order."""
    weeks = origin + np.arange(horizon) * WEEK
    out = {}
    for name, f in forecasts.items():
        f = f.assign(stock_code=f["stock_code"].astype(str))
        wide = f.pivot_table(index="stock_code", columns="week_start", values="forecast")
        out[name] = np.nan_to_num(wide.reindex(index=codes, columns=weeks).to_numpy(float))
    return out


def choose_combination(
    forecasts: dict[str, pd.DataFrame],
    panel: pd.DataFrame,
    origin: pd.Timestamp,
    horizon: int,
    label_end: pd.Timestamp,
    members: tuple[str, ...],
    step: float = 0.1,
) -> dict[str, dict[str, Any]]:
    """Per segment, the combination of the network and baselines with the lowest validation WRMSSE.

    The weights are searched on a simplex grid (:func:`combination_grid`) over the network and
    ``members``; a vertex is the network alone or one baseline alone (a fallback). Ties keep the
    network. A segment with fewer than :data:`MIN_SEGMENT_PRODUCTS` products keeps the network
    (too few to judge).

    Args:
        forecasts: ``{"model": network forecasts (with ``segment``), baseline: forecasts}``.
        panel: Weekly panel.
        origin: The validation origin.
        horizon: Weeks scored.
        label_end: No week on or after it is scored.
        members: Baselines the network may be combined with (keys of ``forecasts``).
        step: Grid step of the weights.

    Returns:
        ``{segment: {"products", "model", "best_baseline", "baseline", "weights", "combined",
        "choice"}}``: validation WRMSSE of the network, the best baseline and the chosen
        combination, whose ``weights`` are the ones to apply and ``choice`` its source name.
    """
    model = forecasts["model"].assign(stock_code=lambda f: f["stock_code"].astype(str))
    seg_of = model.drop_duplicates("stock_code").set_index("stock_code")["segment"]
    codes = sorted(seg_of.index)
    names = ["model", *members]
    arrays = _aligned({n: forecasts[n] for n in names}, codes, origin, horizon)
    others = _aligned(
        {k: v for k, v in forecasts.items() if k not in names}, codes, origin, horizon
    )
    weeks = origin + np.arange(horizon) * WEEK
    act = panel[(panel["week_start"] >= origin) & (panel["week_start"] < label_end)]
    act = act.assign(stock_code=act["stock_code"].astype(str))
    y = np.nan_to_num(
        act.pivot_table(index="stock_code", columns="week_start", values="units", aggfunc="sum")
        .reindex(index=codes, columns=weeks)
        .to_numpy(float)
    )
    mask = np.broadcast_to((weeks < label_end).astype(float), y.shape)
    ev = demand_eval_inputs(panel, origin, codes)
    scales = ev.scales.reindex(codes).to_numpy(float)
    weights = ev.weights.reindex(codes).fillna(0.0).to_numpy(float)
    stacked = np.stack([arrays[n] for n in names])  # (members, products, horizon)
    grid = combination_grid(len(names), step)
    segment = seg_of.reindex(codes).to_numpy()
    out: dict[str, dict[str, Any]] = {}
    for seg in SEGMENTS:
        m = segment == seg
        if not m.any():
            continue

        def score(f: np.ndarray, m: np.ndarray = m) -> float:
            return wrmsse_arrays(y[m], f, mask[m], scales[m], weights[m])

        scores = np.array([score(np.tensordot(g, stacked[:, m], axes=1)) for g in grid])
        base = {n: score(arrays[n][m]) for n in members} | {
            n: score(a[m]) for n, a in others.items()
        }
        best_base = min(base, key=lambda k: base[k])
        pick = int(np.nanargmin(scores)) if int(m.sum()) >= MIN_SEGMENT_PRODUCTS else 0
        chosen = {n: float(w) for n, w in zip(names, grid[pick], strict=True) if w > 0}
        out[seg] = {
            "products": int(m.sum()),
            "model": float(scores[0]),
            "best_baseline": best_base,
            "baseline": base[best_base],
            "weights": chosen,
            "combined": float(scores[pick]),
            "choice": source_name(chosen),
        }
    return out
