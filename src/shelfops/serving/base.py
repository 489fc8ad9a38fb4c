"""What both model servers share: loading state, readiness, metrics and fault drills.

A server is plain Python (no HTTP): :mod:`shelfops.serving.app` puts the HTTP protocols in
front of it, and the BentoML services in ``serving/`` host that app. Tests drive servers
directly, through the ASGI app in process, and as real ``bentoml serve`` processes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from shelfops.observability.metrics import ServingMetrics, build_metrics
from shelfops.settings import ServingSettings, Settings

PredictionHook = Callable[[dict[str, Any]], None]
"""Receives one record per prediction, shaped as ``PredictionLogger.log`` keyword arguments."""


class BadRequest(ValueError):
    """Input the protocol accepts but this model cannot serve; becomes a 4xx with this text."""

    def __init__(self, message: str, status: int = 422) -> None:
        """Create the error with the HTTP status it maps to."""
        super().__init__(message)
        self.status = status


class ModelServer:
    """Shared state of a model server; subclasses implement ``_load`` and the predictions."""

    name: ClassVar[str]
    """The model name clients use (``recs``, ``demand``); also the V2 model name."""
    platform: ClassVar[str] = "pytorch"

    def __init__(
        self,
        settings: Settings,
        serving: ServingSettings,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """Create an unloaded server (``ready`` stays false until :meth:`load`).

        Args:
            settings: ShelfOps settings (home, profile, online store).
            serving: Server settings (timeouts, limits, rules, fault drills).
            registry: Prometheus registry for the metrics (default: a private one).
        """
        self.settings = settings
        self.serving = serving
        self.registry = registry or CollectorRegistry()
        self.metrics: ServingMetrics = build_metrics(self.registry)
        self.version = "unloaded"
        self.tag = ""
        self.metadata: dict[str, Any] = {}
        self.loaded = False
        self.hooks: list[PredictionHook] = []
        self.synthetic_cpu: list[Callable[[float], None]] = []
        """Receive the CPU seconds spent on each synthetic request (the cost meter drops them)."""
        self.closers: list[Callable[[], object]] = []
        # One model computation at a time per process: the work is CPU-bound Python, so taking
        # turns gives shorter tails than threads time-slicing the GIL. Store reads stay outside.
        self.compute = threading.Lock()

    @property
    def ready(self) -> bool:
        """Loaded and not held back by the never-ready fault drill."""
        return self.loaded and not self.serving.never_ready

    def load(self, model_dir: Path, tag: str) -> None:
        """Load the model folder written by the registry and become ready.

        Args:
            model_dir: The ``model`` folder inside a stored BentoML model.
            tag: Its registry tag (``name:version``); the version labels every metric.
        """
        self.tag = tag
        self.version = tag.partition(":")[2] or tag
        meta = model_dir / "metadata.json"
        self.metadata = json.loads(meta.read_text()) if meta.exists() else {}
        self._load(model_dir)
        # The V2 route parses with kserve's protocol types; importing them takes about 1.5 s,
        # which would otherwise land on the first requests.
        import kserve.protocol.infer_type  # noqa: F401

        hooks, self.hooks = self.hooks, []  # warm-up predictions are not traffic
        try:
            self._warm_up()
        finally:
            self.hooks = hooks
        self.loaded = True

    def _load(self, model_dir: Path) -> None:
        raise NotImplementedError

    def _warm_up(self) -> None:
        """Run each prediction path once before turning ready (first calls are slow)."""

    def close(self) -> None:
        """Release background resources and run the closers (e.g. flush the prediction log)."""
        for closer in self.closers:
            try:
                closer()
            except Exception:  # pragma: no cover - shutdown must finish
                continue

    def delay(self) -> None:
        """The latency fault drill: sleep before answering a prediction request."""
        if self.serving.inject_latency_ms > 0:
            time.sleep(self.serving.inject_latency_ms / 1000.0)

    def observe(self, endpoint: str, outcome: str, seconds: float) -> None:
        """Count a request and its latency."""
        self.metrics.request_duration.labels(endpoint, self.name, self.version).observe(seconds)
        self.metrics.requests.labels(endpoint, self.name, self.version, outcome).inc()

    def degraded(self, reason: str) -> None:
        """Count a fallback answer."""
        self.metrics.degraded.labels(self.name, reason).inc()

    def synthetic_done(self, cpu_started: float) -> None:
        """Report the CPU a synthetic request took (``cpu_started`` from ``time.thread_time()``)."""
        spent = time.thread_time() - cpu_started
        for hook in self.synthetic_cpu:
            hook(spent)

    def emit(self, record: dict[str, Any]) -> None:
        """Hand a prediction record to every hook (failures in hooks never fail a request)."""
        for hook in self.hooks:
            try:
                hook(record)
            except Exception:  # pragma: no cover - monitoring must not break serving
                continue

    @staticmethod
    def request_id(given: str | None = None) -> str:
        """The client's request id, or a new one."""
        return given or uuid.uuid4().hex

    def v2_metadata(self) -> dict[str, Any]:
        """The V2 model metadata document."""
        raise NotImplementedError
