"""Training the demand model strictly before a cutoff, with its validation window."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from shelfops.evaluation.scoring import eval_products, score_demand
from shelfops.features.definitions import DEMAND_SERVICE
from shelfops.models.baselines import demand_baselines, wide_panel
from shelfops.models.demand import DemandConfig, DemandModel, fit_demand
from shelfops.training.context import WEEK, Context, Progress, demand_rows, feature_rows, utc


def train_demand(
    ctx: Context, cutoff: pd.Timestamp, config: DemandConfig, say: Progress
) -> tuple[DemandModel, dict[str, Any]]:
    """Train the demand model strictly before ``cutoff`` with a validation window before it.

    Phase 1 trains on labels before ``cutoff - H`` weeks and early-stops on the forecast made at
    that validation origin; phase 2 refits on all labels before ``cutoff`` for the best epoch
    count. Validation metrics of phase 1 and of every baseline feed the success gate.

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
    # Training origins: every Monday with at least one labelled week, products that sold in the
    # 13 weeks before it; sub-sampled to the row budget before asking the feature store.
    w = wide_all.loc[:, wide_all.columns < cutoff]
    sold13 = w.fillna(0.0).T.rolling(13, min_periods=1).sum().T  # through week column
    rng = np.random.default_rng(config.seed)
    pairs_p, pairs_o = np.nonzero(sold13.to_numpy() > 0)
    origins = pd.DatetimeIndex(w.columns[pairs_o]) + WEEK
    keep = origins < cutoff
    pairs_p, origins = pairs_p[keep], origins[keep]
    n_pairs = len(pairs_p)
    budget = int(config.max_train_rows * 1.15)
    if n_pairs > budget:
        pick = np.sort(rng.choice(n_pairs, size=budget, replace=False))
        pairs_p, origins = pairs_p[pick], origins[pick]
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
        tr, wide_all, features, valid_origin, config, valid_rows=vrows, valid_end=cutoff
    )
    say(f"demand: best epoch {m1.history['best_epoch']}, refitting to the cutoff")
    val = score_demand(
        {"model": m1.predict(vrows), **demand_baselines(panel, valid_origin, valid_codes, h)},
        panel,
        valid_origin,
        h,
        cutoff,
        valid_codes,
    )
    model = fit_demand(
        rows, wide_all, features, cutoff, config, epochs=max(1, int(m1.history["best_epoch"]))
    )
    model.history["validation_best_epoch"] = m1.history["best_epoch"]
    model.history["valid_loss"] = m1.history["valid_loss"]
    return model, {
        "validation": val,
        "validation_origin": str(valid_origin.date()),
        "training_rows": len(rows),
    }
