"""The Locust latency gate: run Locust headless, parse its CSV stats, judge against thresholds.

Locust runs as a subprocess (``locust -f loadtests/locustfile.py --headless ...``) against the
canary's own URL and, at the same time, against the stable's, so both see the same machine load.
The verdict applies absolute thresholds (p95, p99, error rate, minimum throughput) to the canary
and a relative one (canary p95 <= stable p95 * factor + slack), plus an optional business check on
the registered validation metrics.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from shelfops.settings import RolloutSettings

USER_CLASSES: Final[Mapping[str, str]] = {"recs": "RecsUser", "demand": "DemandUser"}


@dataclass(frozen=True)
class Profile:
    """A traffic profile: users, spawn rate and duration (spike uses the locustfile's shape).

    Attributes:
        name: Profile name.
        users: Concurrent users (peak users for spike).
        duration_s: Run length in seconds.
        description: What the profile is for.
    """

    name: str
    users: int
    duration_s: float
    description: str


PROFILES: Final[Mapping[str, Profile]] = {
    "smoke": Profile("smoke", 2, 10, "a couple of users for a few seconds: does it answer?"),
    "gate": Profile("gate", 4, 10, "the canary gate: steady moderate load (rollout settings)"),
    "soak": Profile("soak", 8, 600, "steady load for ten minutes: leaks and slow drift"),
    "spike": Profile("spike", 16, 40, "baseline, sudden 4x burst, back to baseline (shape)"),
}


@dataclass(frozen=True)
class LoadStats:
    """Aggregated figures of one Locust run.

    Attributes:
        requests: Requests sent.
        failures: Requests that failed.
        p50_ms: Median latency, ms.
        p95_ms: 95th percentile latency, ms.
        p99_ms: 99th percentile latency, ms.
        rps: Requests per second.
    """

    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float

    @property
    def error_rate(self) -> float:
        """Share of failed requests (1.0 when nothing was sent: no answer is a failure)."""
        return self.failures / self.requests if self.requests else 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy including the error rate."""
        return {**asdict(self), "error_rate": self.error_rate}


def _num(value: str | None) -> float:
    if value is None or value.strip() in {"", "N/A"}:
        return math.nan
    return float(value)


def parse_stats_csv(path: Path) -> LoadStats:
    """Read the ``Aggregated`` row of Locust's ``<prefix>_stats.csv``.

    Args:
        path: The stats CSV Locust wrote with ``--csv PREFIX``.

    Returns:
        The aggregated figures (percentiles NaN when no request completed).

    Raises:
        FileNotFoundError: If Locust wrote no stats (it failed to start).
        ValueError: If the file has no Aggregated row.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Locust wrote no stats at {path}; see the .log file beside it")
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") == "Aggregated":
                return LoadStats(
                    requests=int(_num(row["Request Count"])),
                    failures=int(_num(row["Failure Count"])),
                    p50_ms=_num(row.get("50%")),
                    p95_ms=_num(row.get("95%")),
                    p99_ms=_num(row.get("99%")),
                    rps=_num(row.get("Requests/s")),
                )
    raise ValueError(f"{path} has no Aggregated row")


@dataclass(frozen=True)
class Check:
    """One threshold comparison.

    Attributes:
        name: What was checked.
        value: Measured value.
        limit: The threshold.
        passed: Whether the value is within the threshold.
        detail: Human explanation.
    """

    name: str
    value: float
    limit: float
    passed: bool
    detail: str


@dataclass
class GateVerdict:
    """The gate's decision with every figure behind it."""

    passed: bool
    checks: list[Check]
    canary: LoadStats | None
    stable: LoadStats | None
    duration_s: float = 0.0
    reports: dict[str, str] = field(default_factory=dict)

    def breaches(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """One line: pass, or the breached checks with their numbers."""
        if self.passed:
            return "gate passed: " + "; ".join(c.detail for c in self.checks)
        return "gate failed: " + "; ".join(c.detail for c in self.breaches())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy (for the history and the CLI's --json)."""
        return {
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "canary": self.canary.to_dict() if self.canary else None,
            "stable": self.stable.to_dict() if self.stable else None,
            "duration_s": round(self.duration_s, 3),
            "reports": self.reports,
        }


def _upper(name: str, value: float, limit: float, unit: str) -> Check:
    ok = not math.isnan(value) and value <= limit
    return Check(name, value, limit, ok, f"{name} {value:.4g}{unit} (limit {limit:.4g}{unit})")


def evaluate(
    canary: LoadStats,
    stable: LoadStats | None,
    config: RolloutSettings,
    business: Check | None = None,
) -> GateVerdict:
    """Judge a canary's load-test figures.

    Args:
        canary: Figures measured on the canary's own URL.
        stable: Figures measured on the stable's URL at the same time (None: absolute only).
        config: The thresholds.
        business: An optional business check already computed.

    Returns:
        The verdict; it passes only if every check does.
    """
    checks = [
        _upper("p95", canary.p95_ms, config.max_p95_ms, " ms"),
        _upper("p99", canary.p99_ms, config.max_p99_ms, " ms"),
        _upper("error_rate", canary.error_rate, config.max_error_rate, ""),
    ]
    rps_ok = not math.isnan(canary.rps) and canary.rps >= config.min_rps
    checks.append(
        Check(
            "rps",
            canary.rps,
            config.min_rps,
            rps_ok,
            f"rps {canary.rps:.4g} (minimum {config.min_rps:.4g})",
        )
    )
    if stable is not None and not math.isnan(stable.p95_ms):
        limit = stable.p95_ms * config.p95_factor + config.p95_slack_ms
        check = _upper("p95_vs_stable", canary.p95_ms, limit, " ms")
        checks.append(
            Check(
                check.name,
                check.value,
                check.limit,
                check.passed,
                f"{check.detail}; stable p95 {stable.p95_ms:.4g} ms x {config.p95_factor}"
                f" + {config.p95_slack_ms:.4g} ms",
            )
        )
    if business is not None:
        checks.append(business)
    return GateVerdict(all(c.passed for c in checks), checks, canary, stable)


def business_check(
    canary_meta: Mapping[str, Any] | None,
    stable_meta: Mapping[str, Any] | None,
    tolerance: float,
) -> Check:
    """Compare the registered validation metric of canary and stable.

    The canary must have passed its own training gate, and its gated metric (``metadata
    ["gate"]["metric"]``) must not be worse than the stable's by more than ``tolerance``
    (relative).

    Args:
        canary_meta: Registry metadata of the canary model (``model_metadata``).
        stable_meta: Registry metadata of the stable model, if any.
        tolerance: Largest tolerated relative loss.

    Returns:
        The check.
    """
    if not canary_meta or "gate" not in canary_meta:
        return Check("business", math.nan, tolerance, False, "business: canary has no metrics")
    gate = canary_meta["gate"]
    metric = str(gate.get("metric", "?"))
    value = float(gate.get("model", math.nan))
    if not gate.get("passed", False):
        return Check("business", value, tolerance, False, f"business: canary failed its {metric}")
    if not stable_meta or "gate" not in stable_meta:
        return Check("business", value, tolerance, True, f"business: {metric} {value:.4g}")
    base = float(stable_meta["gate"].get("model", math.nan))
    lower_is_better = metric in {"wrmsse", "wape", "rmsse", "rmse", "mae"}
    if base == 0 or math.isnan(base):
        loss = 0.0
    elif lower_is_better:
        loss = (value - base) / abs(base)
    else:
        loss = (base - value) / abs(base)
    return Check(
        "business",
        loss,
        tolerance,
        loss <= tolerance,
        f"business: {metric} canary {value:.4g} vs stable {base:.4g} "
        f"(loss {loss:+.1%}, limit {tolerance:.0%})",
    )


def find_locustfile(configured: Path | None = None) -> Path:
    """The Locust file: configured, else ``loadtests/locustfile.py`` here or in the repository.

    Raises:
        FileNotFoundError: With the setting to use when no file is found.
    """
    candidates = [configured] if configured else []
    candidates += [
        Path.cwd() / "loadtests" / "locustfile.py",
        Path(__file__).resolve().parents[3] / "loadtests" / "locustfile.py",
    ]
    for path in candidates:
        if path is not None and path.is_file():
            return path.resolve()
    raise FileNotFoundError(
        "loadtests/locustfile.py not found; run from the repository or set "
        "SHELFOPS_ROLLOUT_LOCUSTFILE"
    )


def locust_command(
    *,
    locustfile: Path,
    host: str | None,
    user_classes: Sequence[str],
    users: int,
    duration_s: float,
    prefix: Path,
) -> list[str]:
    """The ``locust`` command line for one headless run (CSV and HTML under ``prefix``)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        *user_classes,
        "--headless",
        "--only-summary",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{max(1, round(duration_s))}s",
        "--stop-timeout",
        "2",
        *(["--host", host] if host else []),
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--loglevel",
        "WARNING",
    ]


@dataclass
class LocustRun:
    """A Locust subprocess in flight, with where its outputs go."""

    process: subprocess.Popen[bytes]
    prefix: Path
    log: Path

    def wait(self, timeout_s: float) -> LoadStats:
        """Wait for Locust to finish and parse its stats.

        Raises:
            TimeoutError: If Locust runs much past its duration (it is killed).
        """
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            raise TimeoutError(
                f"Locust did not finish in {timeout_s:.0f} s; see {self.log}"
            ) from exc
        return parse_stats_csv(self.stats_path)

    @property
    def stats_path(self) -> Path:
        """The final stats the locustfile writes at exit, else Locust's periodic ``_stats.csv``."""
        final = Path(f"{self.prefix}_final_stats.csv")
        return final if final.is_file() else Path(f"{self.prefix}_stats.csv")


def start_locust(
    *,
    locustfile: Path,
    host: str | None,
    user_classes: Sequence[str],
    users: int,
    duration_s: float,
    prefix: Path,
    env: Mapping[str, str] | None = None,
) -> LocustRun:
    """Start one headless Locust run in the background.

    Args:
        locustfile: The Locust file.
        host: Base URL to load (None: each user class's own ``host``).
        user_classes: User classes to run (e.g. ``["RecsUser"]``).
        users: Concurrent users.
        duration_s: Run length.
        prefix: Output prefix: ``<prefix>_stats.csv``, ``<prefix>.html``, ``<prefix>.log``.
        env: Extra environment (traffic sample, profile, thresholds).

    Returns:
        The run; call :meth:`LocustRun.wait`.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    log = Path(f"{prefix}.log")
    cmd = locust_command(
        locustfile=locustfile,
        host=host,
        user_classes=user_classes,
        users=users,
        duration_s=duration_s,
        prefix=prefix,
    )
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    return LocustRun(proc, prefix, log)


BusinessProvider = Callable[[str, str, "str | None"], "Check | None"]


class LocustGate:
    """Runs the gate: Locust on canary and stable URLs at once, then :func:`evaluate`.

    Args:
        config: Thresholds, users and duration.
        report_dir: Where CSV, HTML, logs and verdict JSON go.
        env: Extra environment for Locust (e.g. ``SHELFOPS_LOADTEST_SAMPLE``), or a function
            returning it (called on the first run only).
        business: Optional ``(model, canary_version, stable_version) -> Check``.
    """

    def __init__(
        self,
        config: RolloutSettings,
        report_dir: Path,
        env: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        business: BusinessProvider | None = None,
    ) -> None:
        self.config = config
        self.report_dir = report_dir
        self._env = env
        self._env_cache: dict[str, str] | None = None
        self.business = business

    @property
    def env(self) -> dict[str, str]:
        """Extra Locust environment (computed once, on the first gate run)."""
        if self._env_cache is None:
            raw = self._env() if callable(self._env) else self._env
            self._env_cache = dict(raw or {})
        return self._env_cache

    def run(
        self,
        model: str,
        canary_url: str,
        stable_url: str | None,
        label: str,
        canary_version: str = "",
        stable_version: str | None = None,
    ) -> GateVerdict:
        """Load the canary (and the stable) and judge the canary.

        Args:
            model: Model name (chooses the Locust user class).
            canary_url: The canary revision's own URL.
            stable_url: The stable revision's own URL (None: absolute checks only).
            label: File-name label for this run (e.g. ``recs-v2-step10``).
            canary_version: Version of the canary (for the business check).
            stable_version: Version of the stable (for the business check).

        Returns:
            The verdict, with report paths.
        """
        started = time.perf_counter()
        locustfile = find_locustfile(self.config.locustfile)
        users = [USER_CLASSES[model]]
        env = {**self.env, "SHELFOPS_LOADTEST_PROFILE": "gate"}
        targets = {"canary": canary_url, "stable": stable_url}
        runs = {
            name: start_locust(
                locustfile=locustfile,
                host=url,
                user_classes=users,
                users=self.config.gate_users,
                duration_s=self.config.gate_duration_s,
                prefix=self.report_dir / f"{label}-{name}",
                env=env,
            )
            for name, url in targets.items()
            if url
        }
        timeout = self.config.gate_duration_s + 60
        stats = {name: run.wait(timeout) for name, run in runs.items()}
        business = (
            self.business(model, canary_version, stable_version)
            if self.business and self.config.business_check
            else None
        )
        verdict = evaluate(stats["canary"], stats.get("stable"), self.config, business)
        verdict.duration_s = time.perf_counter() - started
        verdict.reports = {
            f"{name}_{kind}": str(path)
            for name, run in runs.items()
            for kind, path in (
                ("csv", run.stats_path),
                ("html", Path(f"{run.prefix}.html")),
            )
        }
        verdict_path = self.report_dir / f"{label}-verdict.json"
        verdict_path.write_text(json.dumps(verdict.to_dict(), indent=2))
        verdict.reports["verdict"] = str(verdict_path)
        return verdict
