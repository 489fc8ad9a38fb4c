"""Run the training pipeline on this machine with ``kfp.local`` and summarise every step.

``kfp.local`` (SubprocessRunner, no per-step venv) runs each component as a subprocess of this
Python. Its own logs and the components' output go to a log file next to the run's artifacts; the
summary records, per step, the status, wall time, compute time (reported by the step), key
outputs and artifact locations.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shelfops.settings import Settings

# Every step of the training DAG, in order; steps a gate skipped are reported as skipped.
STEPS = (
    "ingest-data",
    "stop-on-data-gate",
    "build-features",
    "train-demand",
    "train-recs",
    "evaluate-models",
    "stop-on-model-gate",
    "register-models",
    "package-bentos",
    "deploy-canary",
)
_GATE_STEPS = {"stop-on-data-gate": "ingest-data", "stop-on-model-gate": "evaluate-models"}

StepEvent = Callable[[str, str], None]


@dataclass
class StepRecord:
    """What one step did."""

    name: str
    status: str  # succeeded, failed or skipped
    wall_s: float = 0.0
    compute_s: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)  # parameters
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> uri, metadata


@dataclass
class RunSummary:
    """The outcome of a local pipeline run."""

    status: str  # succeeded, data_gate_failed, model_gate_failed or failed
    wall_s: float
    steps: list[StepRecord]
    pipeline_root: str
    log: str
    reason: str = ""

    @property
    def compute_s(self) -> float:
        """Seconds the steps spent in ShelfOps code."""
        return sum(s.compute_s for s in self.steps)

    @property
    def overhead_s(self) -> float:
        """Orchestration overhead: wall time minus the sum of step compute."""
        return self.wall_s - self.compute_s

    def step(self, name: str) -> StepRecord:
        """The record of a step by task name."""
        return next(s for s in self.steps if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy (with compute and overhead)."""
        return {
            **asdict(self),
            "compute_s": self.compute_s,
            "overhead_s": self.overhead_s,
        }


def _describe(outputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    from kfp import dsl

    params: dict[str, Any] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    for key, value in outputs.items():
        if isinstance(value, dsl.Artifact):
            artifacts[key] = {"uri": value.uri, "metadata": dict(value.metadata)}
        else:
            params[key] = value
    return params, artifacts


@contextlib.contextmanager
def _recording(records: list[StepRecord], on_step: StepEvent) -> Iterator[None]:
    """Time every task ``kfp.local`` executes (wraps its one task-execution function)."""
    from kfp.local.orchestrator import task_executor

    original = task_executor.execute_single_task

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        name = str(kwargs.get("task_name", args[0] if args else "?"))
        on_step(name, "running")
        started = time.perf_counter()
        outputs, status = original(*args, **kwargs)
        params, artifacts = _describe(outputs or {})
        compute = params.pop("compute_s", params.pop("Output", 0.0))
        state = "succeeded" if status.name == "SUCCESS" else "failed"
        records.append(
            StepRecord(
                name,
                state,
                time.perf_counter() - started,
                float(compute or 0.0),
                params,
                artifacts,
            )
        )
        on_step(name, state)
        return outputs, status

    task_executor.execute_single_task = wrapped
    try:
        yield
    finally:
        task_executor.execute_single_task = original


def run_local(
    settings: Settings,
    arguments: dict[str, Any],
    on_step: StepEvent | None = None,
) -> RunSummary:
    """Run the training pipeline with ``kfp.local`` (SubprocessRunner, no per-step venv).

    Args:
        settings: Settings; the run's home, artifacts (``<home>/pipeline_runs``) and log live there.
        arguments: Pipeline arguments other than ``home``.
        on_step: Called with ``(task name, "running" | "succeeded" | "failed")``.

    Returns:
        The run summary (also written to ``<home>/reports/pipeline_run.json``).
    """
    from kfp import local
    from pipelines.training import training_pipeline

    root = settings.root / "pipeline_runs"
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=False,
    )
    records: list[StepRecord] = []
    started = time.perf_counter()
    with (
        log.open("w") as sink,
        contextlib.redirect_stdout(sink),
        _recording(records, on_step or (lambda _n, _s: None)),
        warnings.catch_warnings(),
    ):
        # The SubprocessRunner warns that the image is not a Python image; locally the
        # components run in this very Python, which has ShelfOps installed.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        training_pipeline(home=str(settings.root), **arguments)
    summary = summarise(records, time.perf_counter() - started, root, log)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    (settings.reports_dir / "pipeline_run.json").write_text(
        json.dumps(summary.to_dict(), indent=2, default=str)
    )
    return summary


def summarise(records: list[StepRecord], wall_s: float, root: Path, log: Path) -> RunSummary:
    """Order the step records, add skipped steps and decide the run status.

    Args:
        records: Steps that ran.
        wall_s: Wall time of the whole run.
        root: The pipeline root (artifacts).
        log: The run's log file.

    Returns:
        The summary.
    """
    ran = {r.name: r for r in records}
    steps = [ran.get(name, StepRecord(name, "skipped")) for name in STEPS]
    steps += [r for r in records if r.name not in STEPS]
    status, reason = "succeeded", ""
    for gate_step, source in _GATE_STEPS.items():
        if gate_step in ran:
            status = "data_gate_failed" if source == "ingest-data" else "model_gate_failed"
            reason = str(ran[source].outputs.get("reason", "")) if source in ran else ""
            break
    else:
        failed = [r.name for r in records if r.status == "failed"]
        if failed:
            status = "failed"
            reason = f"step {failed[0]} failed; its output is in {log}"
    return RunSummary(status, wall_s, steps, str(root), str(log), reason)
