"""Metric unit tests against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shelfops.evaluation.metrics import (
    DemandEval,
    bias,
    coverage,
    demand_metrics,
    discover_list_metrics,
    discovery_metrics,
    hit_at_k,
    naive_scale,
    ndcg_at_k,
    recall_at_k,
    recs_metrics,
    relative_improvement,
    rmsse,
    wape,
    with_discovery_slots,
    wrmsse_arrays,
)

pytestmark = pytest.mark.unit


def test_wape_and_bias_hand_computed() -> None:
    """WAPE = sum|y-f|/sum y and bias = sum(f-y)/sum y on a 3-point example."""
    y = np.array([10.0, 0.0, 5.0])
    f = np.array([8.0, 1.0, 5.0])
    assert wape(y, f) == pytest.approx(3.0 / 15.0)
    assert bias(y, f) == pytest.approx(-1.0 / 15.0)
    assert math.isnan(wape(np.zeros(2), np.ones(2)))


def test_coverage_counts_inclusive_bounds() -> None:
    """P10-P90 coverage counts points on the bounds as covered."""
    assert coverage(
        np.array([1, 5, 9, 10]), np.array([1, 6, 0, 0]), np.array([2, 7, 9, 9])
    ) == pytest.approx(0.5)


def test_naive_scale_drops_leading_zeros() -> None:
    """The RMSSE scale starts at the first sale: [0,0,2,4,4] -> mean(4,0) = 2."""
    assert naive_scale(np.array([0, 0, 2, 4, 4])) == pytest.approx(2.0)
    assert math.isnan(naive_scale(np.array([0, 0, 3])))


def test_rmsse_hand_computed() -> None:
    """RMSSE = sqrt(mean sq error / scale): errors (1,3) with scale 5 -> sqrt(5/5) = 1."""
    assert rmsse(np.array([2.0, 3.0]), np.array([1.0, 6.0]), 5.0) == pytest.approx(1.0)
    assert math.isnan(rmsse(np.array([1.0]), np.array([1.0]), 0.0))


def test_demand_metrics_weights_by_revenue() -> None:
    """WRMSSE weights per-product RMSSE by last-13-week revenue; unscaled products are skipped."""
    frame = pd.DataFrame(
        {
            "stock_code": ["a", "a", "b", "b", "c"],
            "actual": [2.0, 2.0, 1.0, 1.0, 3.0],
            "forecast": [1.0, 3.0, 1.0, 3.0, 3.0],
            "p10": [0.0, 0.0, 0.0, 0.0, 0.0],
            "p90": [5.0, 5.0, 2.0, 2.0, 1.0],
        }
    )
    ev = DemandEval(
        scales=pd.Series({"a": 1.0, "b": 4.0, "c": float("nan")}),
        weights=pd.Series({"a": 30.0, "b": 10.0, "c": 100.0}),
    )
    m = demand_metrics(frame, ev)
    # a: mse 1 / scale 1 -> 1.0; b: mse 2 / 4 -> sqrt(0.5)
    assert m["wrmsse"] == pytest.approx((30 * 1.0 + 10 * math.sqrt(0.5)) / 40)
    assert m["rmsse"] == pytest.approx((1.0 + math.sqrt(0.5)) / 2)
    assert m["wape"] == pytest.approx(4.0 / 9.0)
    assert m["coverage_p10_p90"] == pytest.approx(4 / 5)
    assert m["products"] == 3 and m["products_scaled"] == 2


def test_wrmsse_arrays_matches_the_long_frame_metric() -> None:
    """The array WRMSSE early stopping uses equals demand_metrics' on the same example."""
    actual = np.array([[2.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    forecast = np.array([[1.0, 3.0], [1.0, 3.0], [3.0, 9.0]])
    mask = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # c's second week is not scored
    scales = np.array([1.0, 4.0, float("nan")])
    weights = np.array([30.0, 10.0, 100.0])
    got = wrmsse_arrays(actual, forecast, mask, scales, weights)
    assert got == pytest.approx((30 * 1.0 + 10 * math.sqrt(0.5)) / 40)


def test_ranking_metrics_hand_computed() -> None:
    """Recall, NDCG and HR at k on a list with hits at ranks 1 and 3."""
    ranked = ["x", "a", "y", "b"]
    target = {"x", "y", "z"}
    assert recall_at_k(ranked, target, 3) == pytest.approx(2 / 3)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, target, 3) == pytest.approx(dcg / idcg)
    assert hit_at_k(ranked, target, 3) == 1.0
    assert hit_at_k(["a"], target, 1) == 0.0


def test_recs_metrics_split_repeat_and_new() -> None:
    """Repeat/new recall is computed on the target items bought before / not before the cutoff."""
    ranked = {"c1": ["a", "b"], "c2": ["d", "e"]}
    targets = {"c1": {"a", "z"}, "c2": {"e"}}
    history = {"c1": {"a"}, "c2": set()}
    m = recs_metrics(ranked, targets, history, catalogue_size=8, k=2)
    assert m["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall@2_repeat"] == pytest.approx(1.0)
    assert m["recall@2_new"] == pytest.approx((0.0 + 1.0) / 2)
    assert m["catalogue_coverage"] == pytest.approx(4 / 8)
    assert m["customers"] == 2


def test_discovery_slots_give_the_last_places_to_new_popular_items() -> None:
    """The last E places go to the most popular items the customer never bought, hand-computed."""
    assert with_discovery_slots(["a", "b", "c"], iter(["b", "x", "y"]), k=3, slots=2) == [
        "a",
        "b",
        "x",
    ]
    assert with_discovery_slots(["a", "b", "c"], iter(["x"]), k=3, slots=2) == ["a", "x", "b"]
    ranked = {"c1": ["a", "b"], "c2": ["d", "e"]}
    targets = {"c1": {"a", "p"}, "c2": {"e", "q"}}
    history = {"c1": {"a", "b", "q"}, "c2": {"d", "e"}}
    popular = ["q", "p", "r"]
    m = discovery_metrics(ranked, targets, history, popular, k=2, slots=(1,))
    # c1: [a, p] (q was bought before) finds both; c2: [d, q] finds q (rank 2) but not e
    assert m["recall@2_discovery1"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["recall@2_new_discovery1"] == pytest.approx((1.0 + 1.0) / 2)
    c2_ndcg = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert m["ndcg@2_discovery1"] == pytest.approx((1.0 + c2_ndcg) / 2)
    assert recs_metrics(ranked, targets, history, 4, k=2)["recall@2_new"] == 0.0


def test_the_discover_list_is_scored_as_a_list_of_its_own() -> None:
    """Recall, NDCG and explore recall of discover lists, hand-computed, under their own keys."""
    lists = {"c1": ["p", "x"], "c2": ["q", "e"]}
    targets = {"c1": {"a", "p"}, "c2": {"e", "q"}}
    history = {"c1": {"a", "b"}, "c2": {"d", "e"}}
    m = discover_list_metrics(lists, targets, history, k=2)
    assert set(m) == {
        "recall@2_discover_list",
        "ndcg@2_discover_list",
        "recall@2_new_discover_list",
    }
    # c1 finds p (1 of 2 targets, rank 1); c2 finds both; new targets: c1 {p}, c2 {q}, both found
    assert m["recall@2_discover_list"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall@2_new_discover_list"] == pytest.approx(1.0)
    assert m["ndcg@2_discover_list"] == pytest.approx((1 / (1 + 1 / np.log2(3)) + 1.0) / 2)


def test_relative_improvement_direction() -> None:
    """Improvement is positive when the model is better, for errors and for scores."""
    assert relative_improvement(0.9, 1.0, lower_is_better=True) == pytest.approx(0.1)
    assert relative_improvement(0.33, 0.30, lower_is_better=False) == pytest.approx(0.1)
    assert math.isnan(relative_improvement(1.0, 0.0, lower_is_better=True))


def test_the_backtest_table_prints_the_discover_list_against_popularitys_explore_recall() -> None:
    """The discovery table ends with the discover list row: its metrics and its gain over pop."""
    from rich.console import Console

    from shelfops.cli.models import _discovery_table

    model = {"recall@10": 0.17, "ndcg@10": 0.2, "recall@10_new": 0.004}
    model |= {f"{m}_discovery{e}": 0.1 for e in (2, 4, 6) for m in ("recall@10", "ndcg@10")}
    model |= {f"recall@10_new_discovery{e}": 0.01 for e in (2, 4, 6)}
    model |= {
        "recall@10_discover_list": 0.024,
        "ndcg@10_discover_list": 0.03,
        "recall@10_new_discover_list": 0.018,
    }
    r = {
        "model": model,
        "baselines": {
            "popularity": {"recall@10": 0.09, "recall@10_new": 0.015},
            "tifuknn": {"recall@10": 0.16, "recall@10_new": 0.001},
        },
    }
    console = Console(width=200, record=True)
    console.print(_discovery_table(r))
    last = [line for line in console.export_text().splitlines() if "discover list" in line]
    assert len(last) == 1
    assert "0.0240" in last[0] and "0.0180" in last[0] and "+20.0%" in last[0]
