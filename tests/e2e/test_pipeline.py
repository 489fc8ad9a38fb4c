"""The Kubeflow training pipeline runs locally (kfp.local) end to end, and its gates stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AS_OF = "2026-11-20"  # the SMALL sample ends 2026-11-15: fresh on that day
INSPECT = """
import json, os
import bentoml
from shelfops.registry import model_metadata
out = {}
for name in ("shelfops_demand", "shelfops_recs"):
    m = bentoml.models.get(name + ":latest")
    tag = str(m.tag)
    out[name] = {"tag": tag, "labels": dict(m.info.labels), "meta": model_metadata(tag)}
out["models"] = sorted(str(m.tag) for m in bentoml.models.list())
out["bentos"] = sorted(str(b.tag) for b in bentoml.list())
print(json.dumps(out, default=str))
"""


def _home(tmp_path: Path, small_retailer: Any) -> Path:
    home = tmp_path / "home"
    small_retailer.write(home / "raw" / "generated")
    return home


def _run(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = home.parent / "summary.json"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shelfops.cli.main",
            "--home",
            str(home),
            "pipeline",
            "run",
            "--local",
            "--json",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = json.loads(out.read_text()) if out.exists() else {}
    return done, summary


def _statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in summary["steps"]}


def _store(home: Path) -> dict[str, Any]:
    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml")}
    done = subprocess.run(
        [sys.executable, "-c", INSPECT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _registered(home: Path) -> list[Path]:
    return sorted((home / "bentoml" / "models").glob("*/*/model.yaml"))


def test_data_gate_stops_the_dag_then_a_rerun_registers_and_packages(
    tmp_path: Path, small_retailer: Any
) -> None:
    """A stale export fails the data gate (exit 2, reason shown); a re-run goes end to end and
    records the served-path check and the accepted served gap in the registry."""
    home = _home(tmp_path, small_retailer)
    failed, summary = _run(home, "--as-of", "2030-01-01")
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "data gate failed" in failed.stderr and "days old" in failed.stderr
    assert summary["status"] == "data_gate_failed" and "days old" in summary["reason"]
    ran = {k for k, v in _statuses(summary).items() if v != "skipped"}
    assert ran == {"ingest-data", "stop-on-data-gate"}
    assert not _registered(home)

    done, summary = _run(
        home,
        "--as-of",
        AS_OF,
        "--demand-margin",
        "-1",
        "--recs-margin",
        "-1",
        "--accept-served-gap",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["status"] == "succeeded"
    status = _statuses(summary)
    for step in ("ingest-data", "build-features", "train-demand", "train-recs"):
        assert status[step] == "succeeded"
    for step in ("evaluate-models", "register-models", "package-bentos"):
        assert status[step] == "succeeded"
    assert status["stop-on-data-gate"] == status["stop-on-model-gate"] == "skipped"
    assert status["deploy-canary"] == "skipped"  # deploy_canary defaults to False
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["ingest-data"]["artifacts"]["clean"]["metadata"]["rows_accepted"] > 8000
    metrics = steps["evaluate-models"]["artifacts"]["metrics"]["metadata"]
    assert metrics["demand_model_wrmsse"] > 0 and 0 <= metrics["recs_model_recall@10"] <= 1
    assert metrics["demand_gate_passed"] == metrics["recs_gate_passed"] == 1.0
    for name in ("demand", "recs"):
        model_dir = Path(steps[f"train-{name}"]["artifacts"]["model"]["uri"])
        assert (model_dir / "model").is_dir() and (model_dir / "training.json").exists()
    assert 0 < summary["compute_s"] < summary["wall_s"]

    store = _store(home)
    tags = steps["register-models"]["outputs"]
    assert store["shelfops_demand"]["tag"] == tags["demand_tag"]
    assert store["shelfops_recs"]["tag"] == tags["recs_tag"]
    for name, service in (("shelfops_demand", "demand_v1"), ("shelfops_recs", "recs_v1")):
        meta = store[name]["meta"]
        assert meta["feature_service"] == service and meta["gate"]["passed"] is True
        assert meta["metrics"] and meta["baseline_metrics"] and "git_commit" in meta
    # the recommender's gate held the served-path check; the pipeline parameter accepted any gap
    recs_meta = store["shelfops_recs"]["meta"]
    assert [c["name"] for c in recs_meta["gate"]["checks"]] == ["served_recall"]
    assert recs_meta["served_gap_accepted"] is True and recs_meta["served"]["customers"] > 0
    bentos = steps["package-bentos"]["outputs"]
    assert bentos["demand_bento"] in store["bentos"] and bentos["recs_bento"] in store["bentos"]


def test_model_gate_stops_the_dag_and_registers_nothing(
    tmp_path: Path, small_retailer: Any
) -> None:
    """An unreachable recommendation margin fails the model gate: exit 2, nothing registered."""
    home = _home(tmp_path, small_retailer)
    done, summary = _run(home, "--as-of", AS_OF, "--model", "recs", "--recs-margin", "10")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "model gate failed" in done.stderr and "recall@10" in done.stderr
    assert summary["status"] == "model_gate_failed" and "recs: rejected" in summary["reason"]
    status = _statuses(summary)
    assert status["stop-on-model-gate"] == "failed"
    assert status["register-models"] == status["package-bentos"] == "skipped"
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["train-demand"]["artifacts"]["model"]["metadata"]["trained"] is False
    assert not _registered(home)
