"""Alert rules and dashboards reference only metrics the services actually export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from shelfops.observability.metrics import EXPORTED_METRIC_NAMES, build_metrics

pytestmark = pytest.mark.k8s

METRIC = re.compile(r"\bshelfops_[a-z0-9_]+\b")
SERIES_SUFFIXES = ("_bucket", "_count", "_sum")
# DESIGN.md retail defaults, plus error rate: each must ship as an alert.
REQUIRED_ALERTS = {
    "ShelfOpsModelAccuracyLow",
    "ShelfOpsFeatureDriftHigh",
    "ShelfOpsLatencyP95High",
    "ShelfOpsThroughputDrop",
    "ShelfOpsPredictionConfidenceLow",
    "ShelfOpsCostOverBudget",
    "ShelfOpsErrorRateHigh",
}


def metric_names(promql: str) -> set[str]:
    """Metric families referenced by a PromQL expression (histogram series suffixes removed)."""
    names = set()
    for name in METRIC.findall(promql):
        for suffix in SERIES_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in EXPORTED_METRIC_NAMES:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def _chart_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for d in docs if d["kind"] == "PrometheusRule" for r in _rules(d["spec"]["groups"])]


def _dashboard_exprs(repo_root: Path) -> list[str]:
    exprs = []
    for path in (repo_root / "infra" / "grafana").glob("*.json"):
        board = json.loads(path.read_text())
        stack: list[Any] = [board]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("expr"), str):
                    exprs.append(node["expr"])
                if isinstance(node.get("definition"), str):
                    exprs.append(node["definition"])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return exprs


def test_exported_names_match_registry() -> None:
    """EXPORTED_METRIC_NAMES is exactly what build_metrics() exposes on /metrics."""
    registry = CollectorRegistry()
    build_metrics(registry)
    text = generate_latest(registry).decode()
    exposed = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE ") and not line.split()[2].endswith("_created")
    }
    assert exposed == set(EXPORTED_METRIC_NAMES)


def test_parser_strips_histogram_suffixes_and_flags_unknown_names() -> None:
    """The PromQL parser maps _bucket/_count/_sum to the family and keeps unknown names."""
    expr = (
        "histogram_quantile(0.95, sum by (le) (rate(shelfops_request_duration_seconds_bucket[5m])))"
        " / shelfops_prediction_confidence_count + shelfops_not_a_metric_total"
    )
    assert metric_names(expr) == {
        "shelfops_request_duration_seconds",
        "shelfops_prediction_confidence",
        "shelfops_not_a_metric_total",
    }


def test_chart_rules_use_exported_metrics(
    scenario: str, scenario_docs: dict[str, list[dict[str, Any]]]
) -> None:
    """Every metric in the chart's PrometheusRule expressions is exported by the services."""
    for rule in _chart_rules(scenario_docs[scenario]):
        unknown = metric_names(rule["expr"]) - set(EXPORTED_METRIC_NAMES)
        assert not unknown, f"{rule['alert']} references unexported {unknown}"


def test_infra_rules_use_exported_metrics(repo_root: Path) -> None:
    """Every metric in infra/prometheus/alerts.yaml is exported, and all defaults are present."""
    rules = _rules(
        yaml.safe_load((repo_root / "infra/prometheus/alerts.yaml").read_text())["groups"]
    )
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    for rule in rules:
        referenced = metric_names(rule["expr"])
        assert referenced, f"{rule['alert']} references no ShelfOps metric"
        assert referenced <= set(EXPORTED_METRIC_NAMES), rule["alert"]


def test_dashboard_uses_exported_metrics(repo_root: Path) -> None:
    """Every Grafana panel query references only exported metrics."""
    exprs = _dashboard_exprs(repo_root)
    assert exprs, "no dashboard queries found"
    for expr in exprs:
        assert metric_names(expr) <= set(EXPORTED_METRIC_NAMES), expr
    used = set().union(*(metric_names(e) for e in exprs))
    assert used == set(EXPORTED_METRIC_NAMES), (
        f"not on the dashboard: {set(EXPORTED_METRIC_NAMES) - used}"
    )


def test_infra_rules_equal_chart_defaults(
    repo_root: Path, scenario_docs: dict[str, list[dict[str, Any]]]
) -> None:
    """infra/prometheus/alerts.yaml holds the same rules as the chart renders with defaults."""
    infra = yaml.safe_load((repo_root / "infra/prometheus/alerts.yaml").read_text())["groups"]
    chart = next(d for d in scenario_docs["default"] if d["kind"] == "PrometheusRule")
    assert infra == chart["spec"]["groups"]


def test_default_thresholds_are_the_retail_defaults(
    scenario_docs: dict[str, list[dict[str, Any]]],
) -> None:
    """The default rules encode DESIGN.md's thresholds (0.8, 0.2 PSI, 500 ms, -20%, 0.7, +15%)."""
    rules = {r["alert"]: r["expr"] for r in _chart_rules(scenario_docs["default"])}
    assert set(rules) >= REQUIRED_ALERTS
    assert rules["ShelfOpsModelAccuracyLow"].endswith("< 0.8")
    assert rules["ShelfOpsFeatureDriftHigh"].endswith("> 0.2")
    assert rules["ShelfOpsLatencyP95High"].startswith("histogram_quantile(0.95,")
    assert rules["ShelfOpsLatencyP95High"].endswith("> 0.5")
    assert (
        "< 0.8 * sum by (model) (rate(shelfops_requests_total[10m] offset 1h))"
        in rules["ShelfOpsThroughputDrop"]
    )
    assert rules["ShelfOpsPredictionConfidenceLow"].endswith("< 0.7")
    assert (
        "> on (model) 1.15 * max by (model) (shelfops_cost_budget_per_1k_usd)"
        in rules["ShelfOpsCostOverBudget"]
    )
