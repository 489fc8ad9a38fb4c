"""The local run summary: step order, skipped steps, gate verdicts and overhead."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfops.orchestration.local import STEPS, StepRecord, summarise

pytestmark = pytest.mark.unit


def test_data_gate_failure_is_reported_with_its_reason(tmp_path: Path) -> None:
    """A run that reached stop-on-data-gate is data_gate_failed with the ingest step's reason."""
    records = [
        StepRecord("ingest-data", "succeeded", 2.0, 1.0, {"passed": False, "reason": "stale"}),
        StepRecord("stop-on-data-gate", "failed", 0.5),
    ]
    summary = summarise(records, 3.0, tmp_path, tmp_path / "run.log")
    assert summary.status == "data_gate_failed" and summary.reason == "stale"
    assert [s.name for s in summary.steps] == list(STEPS)
    assert summary.step("build-features").status == "skipped"
    assert summary.compute_s == 1.0 and summary.overhead_s == 2.0


def test_model_gate_failure_and_plain_failures_are_told_apart(tmp_path: Path) -> None:
    """stop-on-model-gate means model_gate_failed; any other failed step is a plain failure."""
    gate = summarise(
        [
            StepRecord("evaluate-models", "succeeded", 1.0, 0.1, {"reason": "recs: rejected"}),
            StepRecord("stop-on-model-gate", "failed", 0.2),
        ],
        2.0,
        tmp_path,
        tmp_path / "run.log",
    )
    assert gate.status == "model_gate_failed" and gate.reason == "recs: rejected"
    broken = summarise(
        [StepRecord("train-recs", "failed", 1.0)], 1.0, tmp_path, tmp_path / "run.log"
    )
    assert broken.status == "failed" and "train-recs" in broken.reason
    assert str(tmp_path / "run.log") in broken.reason


def test_a_clean_run_succeeds_and_serialises(tmp_path: Path) -> None:
    """A run without failures succeeds and its JSON copy carries compute and overhead."""
    records = [StepRecord(name, "succeeded", 1.0, 0.5) for name in STEPS[:1]]
    summary = summarise(records, 4.0, tmp_path, tmp_path / "run.log")
    data = summary.to_dict()
    assert summary.status == "succeeded" and data["compute_s"] == 0.5
    assert data["overhead_s"] == 3.5
