"""Serving cost per 1,000 predictions from measured CPU time and a configured CPU-hour price.

:class:`CostMeter` reads the process CPU time (user + system, ``time.process_time``) at each
``observe(n)``; the cost per 1,000 predictions is ``cpu_seconds / 3600 * price / predictions *
1000`` since the meter started. It can update the Prometheus gauges of
:mod:`shelfops.observability.metrics` (``shelfops_cost_per_1k_predictions_usd`` and
``shelfops_cost_budget_per_1k_usd``) and append snapshots to
``<home>/monitoring/cost/<model>.jsonl`` for ``shelfops monitor check`` and the report.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.monitoring.store import monitoring_dir
from shelfops.observability.metrics import ServingMetrics
from shelfops.settings import MonitorSettings, Settings


def cost_dir(settings: Settings) -> Path:
    """Folder of the cost snapshots."""
    return monitoring_dir(settings) / "cost"


@dataclass(frozen=True)
class CostSnapshot:
    """Cost so far for one model in one process."""

    at: str
    model: str
    predictions: int
    cpu_seconds: float
    cost_usd: float
    cost_per_1k_usd: float | None
    budget_per_1k_usd: float
    over_budget: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


class CostMeter:
    """Measures CPU seconds per prediction and prices them.

    Thread-safe. ``observe`` is cheap (one ``process_time`` call); snapshots are written at
    most every ``persist_seconds``.
    """

    def __init__(
        self,
        model: str,
        monitor: MonitorSettings | None = None,
        *,
        metrics: ServingMetrics | None = None,
        settings: Settings | None = None,
        persist_seconds: float = 60.0,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        """Start measuring from now.

        Args:
            model: Model label of the gauges and snapshots.
            monitor: Price and budget (default: from ``SHELFOPS_MONITOR_*``).
            metrics: Gauges to update (the service's :class:`ServingMetrics`), optional.
            settings: Where to persist snapshots (none when omitted).
            persist_seconds: Least time between two persisted snapshots.
            cpu_clock: CPU-seconds clock (tests inject one).
        """
        mon = monitor or MonitorSettings()
        self.model = model
        self.price_per_cpu_hour = mon.price_per_cpu_hour_usd
        self.budget_per_1k = mon.cost_budget_per_1k_usd
        self.over_budget_ratio = mon.cost_over_budget_ratio
        self.metrics = metrics
        self.settings = settings
        self.persist_seconds = persist_seconds
        self._clock = cpu_clock
        self._start = cpu_clock()
        self._predictions = 0
        self._excluded = 0.0
        self._last_persist = 0.0
        self._lock = threading.Lock()
        if metrics is not None:
            metrics.cost_budget_per_1k_usd.labels(model=model).set(self.budget_per_1k)

    def observe(self, n_predictions: int = 1) -> float | None:
        """Count predictions and return the cost per 1,000 so far (None before the first).

        Args:
            n_predictions: Predictions made since the last call.

        Returns:
            Cost per 1,000 predictions in USD.
        """
        with self._lock:
            self._predictions += int(n_predictions)
            snap = self._snapshot()
            persist = (
                self.settings is not None
                and time.monotonic() - self._last_persist >= self.persist_seconds
            )
            if persist:
                self._last_persist = time.monotonic()
        if self.metrics is not None and snap.cost_per_1k_usd is not None:
            self.metrics.cost_per_1k_predictions_usd.labels(model=self.model).set(
                snap.cost_per_1k_usd
            )
        if persist:
            self._persist(snap)
        return snap.cost_per_1k_usd

    def exclude(self, cpu_seconds: float) -> None:
        """Leave CPU time out of the cost: work done for synthetic traffic (gates, load tests).

        Args:
            cpu_seconds: CPU time the synthetic requests took.
        """
        with self._lock:
            self._excluded += max(float(cpu_seconds), 0.0)

    def _snapshot(self) -> CostSnapshot:
        cpu = max(self._clock() - self._start - self._excluded, 0.0)
        cost = cpu / 3600.0 * self.price_per_cpu_hour
        per_1k = cost / self._predictions * 1000.0 if self._predictions else None
        return CostSnapshot(
            at=dt.datetime.now(dt.UTC).isoformat(),
            model=self.model,
            predictions=self._predictions,
            cpu_seconds=cpu,
            cost_usd=cost,
            cost_per_1k_usd=per_1k,
            budget_per_1k_usd=self.budget_per_1k,
            over_budget=per_1k is not None and per_1k > self.budget_per_1k * self.over_budget_ratio,
        )

    def snapshot(self) -> CostSnapshot:
        """The cost so far."""
        with self._lock:
            return self._snapshot()

    def _persist(self, snap: CostSnapshot) -> None:
        if self.settings is None:
            return
        path = cost_dir(self.settings) / f"{self.model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(snap.to_dict()) + "\n")

    def flush(self) -> CostSnapshot:
        """Persist a snapshot now (if a home was given) and return it."""
        snap = self.snapshot()
        self._persist(snap)
        return snap


def read_cost(settings: Settings, model: str | None = None) -> pd.DataFrame:
    """Persisted cost snapshots (columns as :class:`CostSnapshot`), oldest first."""
    folder = cost_dir(settings)
    files = sorted(folder.glob("*.jsonl")) if model is None else [folder / f"{model}.jsonl"]
    rows = [
        json.loads(line)
        for f in files
        if f.exists()
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if not rows:
        return pd.DataFrame(columns=list(CostSnapshot.__dataclass_fields__))
    frame = pd.DataFrame(rows)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.sort_values("at").reset_index(drop=True)
