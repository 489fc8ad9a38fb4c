"""Cost per 1,000 predictions from CPU seconds and price; gauges and the 15% breach."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shelfops.monitoring.cost import CostMeter, read_cost
from shelfops.observability.metrics import COST_BUDGET_PER_1K, COST_PER_1K, build_metrics
from shelfops.settings import MonitorSettings, Settings

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_cost_per_1k_and_gauges(tmp_path: Path) -> None:
    """3.6 CPU-seconds at $1/CPU-hour over 1,000 predictions is $0.001 per 1k, exported."""
    clock = FakeClock()
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    monitor = MonitorSettings(price_per_cpu_hour_usd=1.0, cost_budget_per_1k_usd=0.001)
    meter = CostMeter("recs", monitor, metrics=metrics, cpu_clock=clock)
    assert registry.get_sample_value(COST_BUDGET_PER_1K, {"model": "recs"}) == 0.001
    clock.t += 3.6
    assert meter.observe(1000) == pytest.approx(0.001)
    assert registry.get_sample_value(COST_PER_1K, {"model": "recs"}) == pytest.approx(0.001)
    assert not meter.snapshot().over_budget


def test_over_budget_by_more_than_15_percent(tmp_path: Path) -> None:
    """10% over budget is tolerated; 20% over is a breach; snapshots persist for the check."""
    clock = FakeClock()
    settings = Settings(home=tmp_path)
    monitor = MonitorSettings(price_per_cpu_hour_usd=1.0, cost_budget_per_1k_usd=0.001)
    meter = CostMeter("demand", monitor, settings=settings, cpu_clock=clock, persist_seconds=0)
    clock.t += 3.6 * 1.10
    meter.observe(1000)
    assert not meter.snapshot().over_budget
    clock.t += 3.6 * 0.10
    meter.observe(0)
    assert meter.snapshot().over_budget
    saved = read_cost(settings, "demand")
    assert len(saved) == 2 and bool(saved["over_budget"].iloc[-1])


def test_real_cpu_clock_measures_work() -> None:
    """With the process clock, burning CPU raises the measured cost above zero."""
    meter = CostMeter("recs", MonitorSettings(price_per_cpu_hour_usd=1.0))
    sum(i * i for i in range(300_000))
    assert (meter.observe(10) or 0.0) > 0.0


def test_cpu_spent_on_synthetic_traffic_is_not_billed() -> None:
    """CPU excluded for gate/load-test requests leaves the cost per 1k of real ones unchanged."""
    clock = FakeClock()
    monitor = MonitorSettings(price_per_cpu_hour_usd=1.0, cost_budget_per_1k_usd=0.001)
    meter = CostMeter("recs", monitor, cpu_clock=clock)
    clock.t += 3.6 + 7.2  # 3.6 s for real predictions, 7.2 s for a load test
    meter.exclude(7.2)
    assert meter.observe(1000) == pytest.approx(0.001)
