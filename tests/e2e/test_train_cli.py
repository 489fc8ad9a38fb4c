"""`shelfops train` registers gated models in the BentoML store and Predictors load them back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import make_home

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LOAD = """
import json, sys
from shelfops.predictors.demand import DemandPredictor
from shelfops.predictors.recs import RecsPredictor
from shelfops.registry import model_metadata
d, r = DemandPredictor.from_registry(), RecsPredictor.from_registry()
print(json.dumps({"demand": model_metadata(d.tag), "recs": model_metadata(r.tag),
                  "demand_features": d.features, "recs_features": r.features}, default=str))
"""


def _shelfops(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHELFOPS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "shelfops.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # training scores three validation origins; CI shares 2 cores
    )


def test_train_gates_registers_and_predictors_load(tmp_path: Path, small_exports) -> None:
    """An impossible margin rejects and registers nothing; a met margin registers both models
    with the served-path figures and the operator's served-gap decision in their metadata."""
    settings, _ = make_home(tmp_path, small_exports)
    for step in (("features", "apply"), ("features", "materialize")):
        assert _shelfops(settings.root, *step).returncode == 0
    rejected = _shelfops(settings.root, "train", "--task", "recs", "--recs-margin", "10")
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "rejected" in rejected.stdout and "not registered" in rejected.stdout
    assert not (settings.bentoml_home / "models" / "shelfops_recs").exists()

    accepted = _shelfops(
        settings.root,
        "train",
        "--demand-margin",
        "-1",
        "--recs-margin",
        "-1",
        "--accept-served-gap",
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    env = {**os.environ, "BENTOML_HOME": str(settings.bentoml_home)}
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr
    info = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert info["demand"]["feature_service"] == "demand_v1"
    assert info["recs"]["feature_service"] == "recs_v1"
    for name in ("demand", "recs"):
        assert info[name]["metrics"] and info[name]["baseline_metrics"]
        assert "seed" in info[name] and "git_commit" in info[name]
    assert "units_history_52w" in info["demand_features"]
    # The registry holds the metrics of the model it registered: the mean over the validation
    # origins that this very model was gated on (not another fit's), with each origin kept.
    for name, metric in (("demand", "wrmsse"), ("recs", "recall@10")):
        per_origin = info[name]["validation_per_origin"]
        assert len(per_origin) == 3 and len(info[name]["validation_origins"]) == 3
        mean = sum(o["model"][metric] for o in per_origin.values()) / 3
        assert info[name]["metrics"][metric] == pytest.approx(mean)
        assert info[name]["gate"]["model"] == pytest.approx(mean)
        assert [o["origin"] for o in info[name]["gate"]["origins"]] == sorted(per_origin)
    # the recommender's gate replayed the latest validation origin's customers through the
    # server; the operator's acceptance of any gap is on record
    served = info["recs"]["served"]
    assert served["cutoff"] == info["recs"]["validation_origins"][-1]
    assert [c["name"] for c in info["recs"]["gate"]["checks"]] == ["served_recall"]
    assert served["customers"] > 0 and 0.0 <= served["served"]["recall@10"] <= 1.0
    assert info["recs"]["served_gap_accepted"] is True
    assert "Served path vs offline" in accepted.stdout
