"""The Prometheus metric catalogue every ShelfOps service exports.

This module is the single source of truth for metric names and labels. Alert rules (the Helm
chart's PrometheusRule and ``infra/prometheus/alerts.yaml``) and the Grafana dashboard may only
reference names listed in :data:`EXPORTED_METRIC_NAMES`; ``tests/k8s`` enforces it.

Nothing is registered at import time: services call :func:`build_metrics` with the registry they
expose on ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REQUEST_DURATION: Final = "shelfops_request_duration_seconds"
REQUESTS_TOTAL: Final = "shelfops_requests_total"
DEGRADED_TOTAL: Final = "shelfops_degraded_total"
PREDICTION_CONFIDENCE: Final = "shelfops_prediction_confidence"
MODEL_ACCURACY: Final = "shelfops_model_accuracy"
FEATURE_DRIFT_PSI: Final = "shelfops_feature_drift_psi"
COST_PER_1K: Final = "shelfops_cost_per_1k_predictions_usd"
COST_BUDGET_PER_1K: Final = "shelfops_cost_budget_per_1k_usd"
RULE_REMOVALS: Final = "shelfops_rule_removals_total"

EXPORTED_METRIC_NAMES: Final[tuple[str, ...]] = (
    REQUEST_DURATION,
    REQUESTS_TOTAL,
    DEGRADED_TOTAL,
    PREDICTION_CONFIDENCE,
    MODEL_ACCURACY,
    FEATURE_DRIFT_PSI,
    COST_PER_1K,
    COST_BUDGET_PER_1K,
    RULE_REMOVALS,
)
"""Exposition names as PromQL sees them (histograms add ``_bucket``/``_count``/``_sum``)."""

OUTCOMES: Final[tuple[str, ...]] = ("success", "error", "degraded")
"""Allowed values of the ``outcome`` label on :data:`REQUESTS_TOTAL`."""

LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
)
"""Latency buckets in seconds; 0.5 is a bucket edge so the p95 > 500 ms alert is exact."""

CONFIDENCE_BUCKETS: Final[tuple[float, ...]] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Confidence buckets; 0.7 is a bucket edge to match the low-confidence alert."""


@dataclass(frozen=True)
class ServingMetrics:
    """The metric objects one service process exports.

    Attributes:
        request_duration: Request latency in seconds by endpoint, model and model version.
        requests: Requests by endpoint, model, model version and outcome (see :data:`OUTCOMES`).
        degraded: Responses served by a fallback (e.g. popularity), by model and reason.
        prediction_confidence: Confidence of each prediction, by model and model version.
        model_accuracy: Latest measured accuracy on arrived actuals, by model and metric.
        feature_drift_psi: Population stability index of each input feature against training.
        cost_per_1k_predictions_usd: Estimated serving cost per 1,000 predictions.
        cost_budget_per_1k_usd: The configured budget per 1,000 predictions.
        rule_removals: Recommendation candidates a merchandising rule removed, by model, rule
            and the list they were removed from (personal or popularity).
    """

    request_duration: Histogram
    requests: Counter
    degraded: Counter
    prediction_confidence: Histogram
    model_accuracy: Gauge
    feature_drift_psi: Gauge
    cost_per_1k_predictions_usd: Gauge
    cost_budget_per_1k_usd: Gauge
    rule_removals: Counter


def build_metrics(registry: CollectorRegistry) -> ServingMetrics:
    """Create and register the ShelfOps serving metrics on ``registry``.

    Args:
        registry: The registry the service exposes on ``/metrics``. Each registry may be passed
            once; registering twice raises ``ValueError`` from ``prometheus_client``.

    Returns:
        The metric objects, ready to observe.
    """
    return ServingMetrics(
        request_duration=Histogram(
            REQUEST_DURATION,
            "Request latency in seconds.",
            ("endpoint", "model", "model_version"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        requests=Counter(
            REQUESTS_TOTAL,
            "Requests handled, by outcome (success, error, degraded).",
            ("endpoint", "model", "model_version", "outcome"),
            registry=registry,
        ),
        degraded=Counter(
            DEGRADED_TOTAL,
            "Responses served by a fallback instead of the model, by reason.",
            ("model", "reason"),
            registry=registry,
        ),
        prediction_confidence=Histogram(
            PREDICTION_CONFIDENCE,
            "Confidence of each prediction (0 to 1).",
            ("model", "model_version"),
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        ),
        model_accuracy=Gauge(
            MODEL_ACCURACY,
            "Latest accuracy on arrived actuals (1 - WAPE for demand, hit rate for recs).",
            ("model", "metric"),
            registry=registry,
        ),
        feature_drift_psi=Gauge(
            FEATURE_DRIFT_PSI,
            "Population stability index of an input feature against its training distribution.",
            ("model", "feature"),
            registry=registry,
        ),
        cost_per_1k_predictions_usd=Gauge(
            COST_PER_1K,
            "Estimated serving cost in USD per 1,000 predictions.",
            ("model",),
            registry=registry,
        ),
        cost_budget_per_1k_usd=Gauge(
            COST_BUDGET_PER_1K,
            "Budgeted serving cost in USD per 1,000 predictions.",
            ("model",),
            registry=registry,
        ),
        rule_removals=Counter(
            RULE_REMOVALS,
            "Recommendation candidates removed by a merchandising rule.",
            ("model", "rule", "source"),
            registry=registry,
        ),
    )
