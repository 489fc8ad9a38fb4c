"""The compiled candidate builder: the same answers as its Python source, customer by customer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shelfops.models import candidates
from shelfops.models.recs import (
    PAIR_FEATURES,
    CandidateBatch,
    ItemStats,
    RecsConfig,
    build_candidates,
    item_stats,
)

pytestmark = pytest.mark.unit

CUTOFF = pd.Timestamp("2024-07-01")
CONFIG = RecsConfig(co_candidates=6, popular_candidates=5, trial_candidates=3)


def _world(seed: int = 0) -> tuple[ItemStats, dict[str, list[Any]], np.ndarray]:
    """Random baskets over 40 items (some discontinued) and 30 customers' feature rows.

    Histories vary in length (none, one item, many), include codes the model does not know and
    are written in the feature table's order; the scoring time is the cutoff.
    """
    rng = np.random.default_rng(seed)
    codes = [f"i{k:02d}" for k in range(40)]
    lines = []
    for inv in range(400):
        day = CUTOFF - pd.Timedelta(days=int(rng.integers(1, 200)))
        for code in rng.choice(codes, size=int(rng.integers(1, 6)), replace=False):
            lines.append((f"v{inv}", f"c{inv % 30}", code, day))
    frame = pd.DataFrame(lines, columns=["invoice", "customer_id", "stock_code", "invoice_date"])
    products = pd.DataFrame(
        {
            "stock_code": codes,
            "category": [f"cat{k % 4}" if k % 7 else "Unknown" for k in range(40)],
            "description": "",
            "discontinue_date": [
                CUTOFF - pd.Timedelta(days=3) if k % 9 == 4 else pd.NaT for k in range(40)
            ],
        }
    )
    stats = item_stats(frame, products, CUTOFF, codes, CONFIG)
    now = CUTOFF.value / 1e9
    rows: dict[str, list[Any]] = {k: [] for k in ("customer_id", "top_items", "top_item_counts")}
    for key in ("top_item_last_ts", "invoices_total", "invoices_90d", "last_purchase_ts"):
        rows[key] = []
    rows["discount_affinity"], rows["favourite_category"] = [], []
    for c in range(30):
        size = [0, 1, 3, 12][c % 4]
        own = [str(x) for x in rng.choice(codes, size=size, replace=False)]
        if c % 5 == 1:
            own.append("not-in-the-model")
        last = [now - float(rng.integers(1, 90)) * 86400 for _ in own]
        rows["customer_id"].append(f"c{c}")
        rows["top_items"].append(own)
        rows["top_item_counts"].append([int(rng.integers(1, 9)) for _ in own])
        rows["top_item_last_ts"].append(last)
        rows["invoices_total"].append(int(rng.integers(1, 40)))
        rows["invoices_90d"].append(int(rng.integers(0, 12)))
        rows["last_purchase_ts"].append(max(last, default=0.0))
        rows["discount_affinity"].append(float(rng.random()))
        rows["favourite_category"].append(f"cat{c % 5}" if c % 3 else None)
    return stats, rows, np.full(30, now)


def _row(batch: CandidateBatch, r: int) -> tuple[np.ndarray, ...]:
    """Customer ``r``'s candidates (padding cut off), features and co-purchase sources."""
    keep = batch.mask[r].numpy()
    return (
        batch.items[r].numpy()[keep],
        batch.feats[r].numpy()[keep],
        batch.co_source[r].numpy()[keep],
    )


def test_the_compiled_builder_equals_its_python_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numba's machine code gives what the same function gives as Python (float32 rounding)."""
    stats, rows, now = _world()
    fast = build_candidates(rows, stats, CONFIG, now)
    monkeypatch.setattr(candidates, "compiled", lambda: candidates.candidate_arrays)
    slow = build_candidates(rows, stats, CONFIG, now)
    assert np.array_equal(fast.items.numpy(), slow.items.numpy())
    assert np.array_equal(fast.co_source.numpy(), slow.co_source.numpy())
    np.testing.assert_allclose(fast.hist_w.numpy(), slow.hist_w.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fast.feats.numpy(), slow.feats.numpy(), rtol=1e-6, atol=1e-6)


def test_a_customer_gets_the_same_candidates_alone_or_in_any_batch() -> None:
    """The per-item scratch never leaks one customer's items into another's (any order)."""
    stats, rows, now = _world(seed=3)
    together = build_candidates(rows, stats, CONFIG, now)
    order = np.random.default_rng(1).permutation(len(now))
    shuffled = build_candidates(
        {k: [v[i] for i in order] for k, v in rows.items()}, stats, CONFIG, now
    )
    for r in range(len(now)):
        alone = build_candidates({k: [v[r]] for k, v in rows.items()}, stats, CONFIG, now[:1])
        expected = _row(alone, 0)
        for batch, at in ((together, r), (shuffled, int(np.flatnonzero(order == r)[0]))):
            got = _row(batch, at)
            assert np.array_equal(got[0], expected[0]), rows["customer_id"][r]
            np.testing.assert_array_equal(got[1], expected[1])
            assert np.array_equal(got[2], expected[2])


def test_candidate_order_and_co_purchase_by_hand() -> None:
    """Own items first, then co-purchase by pull (its strongest source kept), then popular."""
    codes = ["a", "b", "c", "d", "e", "p"]
    # a's neighbours: c (0.5), d (0.2); b's: c (0.1), e (0.6); nobody's: p (only popular)
    nbr_idx = np.array([[2, 3], [2, 4], [-1, -1], [-1, -1], [-1, -1], [-1, -1]], np.int64)
    nbr_val = np.array([[0.5, 0.2], [0.1, 0.6], [0, 0], [0, 0], [0, 0], [0, 0]], np.float32)
    zeros = np.zeros(6, np.float32)
    stats = ItemStats(
        items=codes,
        pop4=np.array([0, 0, 0, 0, 0, 9], np.float32),
        pop13=np.ones(6, np.float32),
        pop52=np.ones(6, np.float32),
        repeat_rate=np.full(6, 0.5, np.float32),
        age_weeks=zeros,
        nbr_idx=nbr_idx,
        nbr_val=nbr_val,
        category=["Unknown"] * 6,
        description=[""] * 6,
        recommendable=np.ones(6, bool),
    )
    ts = CUTOFF.value / 1e9 - 86400.0
    row = {
        "customer_id": ["u"],
        "top_items": [["a", "b"]],
        "top_item_counts": [[np.e - 1, np.e**2 - 1]],  # weights log1p(count): 1 and 2
        "top_item_last_ts": [[ts, ts]],
        "last_purchase_ts": [ts],
    }
    batch = build_candidates(row, stats, RecsConfig(), np.array([CUTOFF.value / 1e9]))
    items, feats, source = _row(batch, 0)
    # pulls: c = 0.5 * 1 + 0.1 * 2 = 0.7, e = 0.6 * 2 = 1.2, d = 0.2 * 1 = 0.2
    assert [codes[j] for j in items] == ["a", "b", "e", "c", "d", "p"]
    co = PAIR_FEATURES.index("log_co_purchase")
    co_max = PAIR_FEATURES.index("log_co_purchase_max")
    np.testing.assert_allclose(np.expm1(feats[2:5, co]), [1.2, 0.7, 0.2], rtol=1e-6)
    np.testing.assert_allclose(np.expm1(feats[2:5, co_max]) / 10, [1.2, 0.5, 0.2], rtol=1e-6)
    assert [codes[j] if j >= 0 else None for j in source] == [None, None, "b", "a", "a", None]
    assert feats[:2, PAIR_FEATURES.index("own")].tolist() == [1.0, 1.0]
    assert feats[2:, PAIR_FEATURES.index("own")].tolist() == [0.0] * 4
