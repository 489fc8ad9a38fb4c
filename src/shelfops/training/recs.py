"""Training the recommender on several cutoffs strictly before a cutoff."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from shelfops.data.consent import drop_opted_out, opted_out_count
from shelfops.evaluation.scoring import score_recs
from shelfops.features.definitions import RECS_SERVICE
from shelfops.models.recs import (
    ItemStats,
    RecsConfig,
    RecsModel,
    TrainingSlice,
    first_baskets,
    fit_recs,
    item_stats,
    purchase_lines,
)
from shelfops.training.context import WEEK, Context, Progress, recs_rows


def buyers_before(lines: pd.DataFrame, at: pd.Timestamp) -> set[str]:
    """Customers with a purchase before ``at``."""
    return set(
        lines.loc[
            (lines["invoice_date"] < at) & lines["customer_id"].notna(), "customer_id"
        ].astype(str)
    )


def stats_at(
    ctx: Context, lines: pd.DataFrame, items: list[str], at: pd.Timestamp, config: RecsConfig
) -> ItemStats:
    """Item statistics as of ``at``, computed once per run and moment.

    Training cutoffs, the refit and the evaluation origins revisit the same moments; the
    statistics read only lines before ``at``, so they are the same every time.

    Args:
        ctx: Data context (holds the memo).
        lines: Purchase lines (any lines on or after ``at`` are ignored).
        items: The item vocabulary.
        at: The moment.
        config: Neighbour counts and windows.

    Returns:
        The statistics.
    """
    key = ("item_stats", at, hash(tuple(items)), tuple(sorted(config.to_dict().items())))
    if key not in ctx.memo:
        ctx.memo[key] = item_stats(lines, ctx.products, at, items, config)
    stats: ItemStats = ctx.memo[key]
    return stats


def recs_slice(
    ctx: Context,
    lines: pd.DataFrame,
    items: list[str],
    at: pd.Timestamp,
    label_end: pd.Timestamp,
    config: RecsConfig,
) -> TrainingSlice:
    """A training or evaluation slice at ``at``.

    First baskets before ``label_end`` of consenting customers seen before ``at``, their
    features and the item statistics as of ``at``.
    """
    targets = first_baskets(lines, at, label_end, buyers_before(lines, at))
    rows = drop_opted_out(recs_rows(ctx, sorted(targets), at))
    allowed = set(rows["customer_id"].astype(str))
    targets = {c: t for c, t in targets.items() if c in allowed}
    stats = stats_at(ctx, lines, items, at, config)
    return TrainingSlice(cutoff=at, rows=rows, stats=stats, targets=targets)


def narrowed(lines: pd.DataFrame, sl: TrainingSlice, label_end: pd.Timestamp) -> TrainingSlice:
    """The slice as :func:`recs_slice` builds it for an earlier ``label_end``, without a read.

    Its customers are those of ``sl`` whose first basket after the cutoff comes before
    ``label_end`` (the same basket), with the same feature rows, in the same order.

    Args:
        lines: Purchase lines.
        sl: A slice at the same cutoff with a later (or equal) label end.
        label_end: The earlier label end.

    Returns:
        The narrower slice.
    """
    targets = first_baskets(lines, sl.cutoff, label_end, set(sl.targets))
    keep = sl.rows["customer_id"].astype(str).isin(set(targets)).to_numpy()
    rows = sl.rows[keep].reset_index(drop=True)
    return TrainingSlice(cutoff=sl.cutoff, rows=rows, stats=sl.stats, targets=targets)


def train_recs(
    ctx: Context, cutoff: pd.Timestamp, config: RecsConfig, say: Progress
) -> tuple[RecsModel, dict[str, Any]]:
    """Train the recommender on several cutoffs strictly before ``cutoff``.

    Phase 1 trains on cutoffs 2..n (targets before the validation cutoff) and early-stops on the
    validation cutoff (``cutoff`` minus the spacing, targets before ``cutoff``); phase 2 refits
    on all cutoffs for the best epoch count.

    Args:
        ctx: Data context.
        cutoff: Nothing on or after it is read.
        config: Hyper-parameters.
        say: Progress messages.

    Returns:
        The model (serving with item statistics as of ``cutoff``) and validation metrics.
    """
    lines = purchase_lines(ctx.transactions)
    lines = lines[lines["invoice_date"] < cutoff]
    items = sorted(lines["stock_code"].unique().tolist())
    features = ctx.source.feature_names(RECS_SERVICE)
    sp = config.cutoff_spacing_weeks * WEEK
    cuts = [cutoff - k * sp for k in range(1, config.train_cutoffs + 1)]
    first = lines["invoice_date"].min()
    cuts = [c for c in cuts if c > first + 4 * WEEK] or [cutoff - sp]
    t0 = time.perf_counter()
    valid = recs_slice(ctx, lines, items, cuts[0], cutoff, config)
    # The refit's slices hold every customer and feature row phase 1 needs: one read per cutoff.
    later = [recs_slice(ctx, lines, items, c, cutoff, config) for c in cuts[1:]]
    phase1 = [narrowed(lines, s, cuts[0]) for s in later]
    ctx.timings["recs_features_s"] = time.perf_counter() - t0
    say(
        f"recs: {sum(len(s.targets) for s in phase1):,} training baskets, "
        f"{len(valid.targets):,} validation baskets"
    )
    m1 = fit_recs(phase1 or [valid], valid.stats, features, config, valid=[valid] if phase1 else [])
    val, _ = score_recs(lines, valid, m1, customers=ctx.customers)
    say(f"recs: best epoch {m1.history['best_epoch']}, refitting to the cutoff")
    refit = [valid, *later]
    final_stats = stats_at(ctx, lines, items, cutoff, config)
    model = fit_recs(
        refit, final_stats, features, config, epochs=max(1, int(m1.history["best_epoch"]))
    )
    model.history["validation_best_epoch"] = m1.history["best_epoch"]
    model.history["valid_loss"] = m1.history["valid_loss"]
    return model, {
        "validation": val,
        "validation_cutoff": str(cuts[0].date()),
        "training_customers": int(sum(len(s.targets) for s in refit)),
        "excluded_opted_out": opted_out_count(ctx.customers),
    }
