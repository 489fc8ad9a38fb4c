"""Parsing Locust's CSV stats and judging a canary against absolute and relative thresholds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shelfops.rollout.gate import (
    LoadStats,
    business_check,
    evaluate,
    locust_command,
    parse_stats_csv,
)
from shelfops.settings import RolloutSettings

pytestmark = pytest.mark.unit

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
)
ROWS = (
    "POST,/recommend,653,0,12,13.6,3.0,55.4,1411.1,72.58,0.0,12,16,18,19,23,26,29,34,55,55,55\n"
    ",Aggregated,821,8,10,11.8,1.5,55.4,1159.0,91.25,1.0,10,14,16,18,22,27,30,35,55,55,55\n"
)
CONFIG = RolloutSettings(
    max_p95_ms=100, max_p99_ms=200, max_error_rate=0.01, min_rps=5, p95_factor=1.2, p95_slack_ms=5
)


def _stats(p95: float, p99: float = 50, failures: int = 0, rps: float = 50) -> LoadStats:
    return LoadStats(
        requests=1000, failures=failures, p50_ms=p95 / 2, p95_ms=p95, p99_ms=p99, rps=rps
    )


def test_parse_reads_the_aggregated_row(tmp_path: Path) -> None:
    """The Aggregated row's counts, percentiles and throughput are read, not the first row's."""
    path = tmp_path / "x_stats.csv"
    path.write_text(HEADER + ROWS)
    stats = parse_stats_csv(path)
    assert (stats.requests, stats.failures, stats.p95_ms, stats.p99_ms) == (821, 8, 27, 35)
    assert stats.rps == pytest.approx(91.25) and stats.error_rate == pytest.approx(8 / 821)


def test_parse_handles_no_requests_and_missing_files(tmp_path: Path) -> None:
    """N/A percentiles become NaN (and then fail the gate); a missing file says where to look."""
    path = tmp_path / "empty_stats.csv"
    path.write_text(HEADER + ",Aggregated,0,0,0,0,0,0,0,0,0," + ",".join(["N/A"] * 11) + "\n")
    stats = parse_stats_csv(path)
    assert stats.requests == 0 and math.isnan(stats.p95_ms) and stats.error_rate == 1.0
    assert not evaluate(stats, None, CONFIG).passed
    with pytest.raises(FileNotFoundError, match="log"):
        parse_stats_csv(tmp_path / "missing_stats.csv")


def test_healthy_canary_passes_every_check() -> None:
    """Within absolute limits and close to the stable, the canary passes."""
    verdict = evaluate(_stats(40), _stats(38), CONFIG)
    assert verdict.passed and {c.name for c in verdict.checks} == {
        "p95",
        "p99",
        "error_rate",
        "rps",
        "p95_vs_stable",
    }


@pytest.mark.parametrize(
    ("canary", "stable", "breach"),
    [
        (_stats(150), None, "p95"),
        (_stats(40, p99=400), None, "p99"),
        (_stats(40, failures=20), None, "error_rate"),
        (_stats(40, rps=2), None, "rps"),
        (_stats(60), _stats(30), "p95_vs_stable"),
    ],
)
def test_each_breach_fails_the_gate(
    canary: LoadStats, stable: LoadStats | None, breach: str
) -> None:
    """Every threshold can fail the gate on its own, and the summary names it."""
    verdict = evaluate(canary, stable, CONFIG)
    assert not verdict.passed
    assert [c.name for c in verdict.breaches()] == [breach]
    assert breach in verdict.summary()


def test_relative_limit_uses_factor_plus_slack() -> None:
    """Canary p95 may reach stable p95 * factor + slack, and not a millisecond more."""
    assert evaluate(_stats(41), _stats(30), CONFIG).passed  # 30 * 1.2 + 5 = 41
    assert not evaluate(_stats(41.5), _stats(30), CONFIG).passed


def test_business_check_compares_registered_metrics() -> None:
    """A canary whose registered metric is much worse than the stable's fails the business check."""
    good = {"gate": {"metric": "recall@10", "model": 0.20, "passed": True}}
    worse = {"gate": {"metric": "recall@10", "model": 0.15, "passed": True}}
    assert business_check(good, worse, 0.02).passed
    assert not business_check(worse, good, 0.02).passed
    wrmsse_better = {"gate": {"metric": "wrmsse", "model": 0.8, "passed": True}}
    wrmsse_worse = {"gate": {"metric": "wrmsse", "model": 0.9, "passed": True}}
    assert business_check(wrmsse_better, wrmsse_worse, 0.02).passed
    assert not business_check(wrmsse_worse, wrmsse_better, 0.02).passed
    assert not business_check(None, good, 0.02).passed
    verdict = evaluate(_stats(40), None, CONFIG, business_check(worse, good, 0.02))
    assert not verdict.passed and "business" in verdict.summary()


def test_locust_command_is_headless_with_csv_and_html(tmp_path: Path) -> None:
    """The Locust command runs headless and writes CSV stats and the HTML report."""
    cmd = locust_command(
        locustfile=tmp_path / "l.py",
        host="http://x",
        user_classes=["RecsUser"],
        users=3,
        duration_s=7.4,
        prefix=tmp_path / "p",
    )
    assert "--headless" in cmd and cmd[cmd.index("-u") + 1] == "3"
    assert cmd[cmd.index("-t") + 1] == "7s" and cmd[cmd.index("--csv") + 1] == str(tmp_path / "p")
    assert cmd[cmd.index("--html") + 1] == f"{tmp_path / 'p'}.html"
    assert "--host" not in locust_command(
        locustfile=tmp_path / "l.py",
        host=None,
        user_classes=[],
        users=1,
        duration_s=1,
        prefix=tmp_path,
    )
