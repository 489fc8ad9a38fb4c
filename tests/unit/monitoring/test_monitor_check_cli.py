"""`shelfops monitor check` exits 1 on drift and, in the cluster profile, builds the dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shelfops.cli.main import app
from shelfops.monitoring.check import read_triggers
from shelfops.monitoring.drift import save_reference
from shelfops.monitoring.store import PredictionLogger
from shelfops.settings import Settings

pytestmark = pytest.mark.unit

NOW = "2026-12-04T00:00:00"


def _home(tmp_path: Path, shift: float) -> Settings:
    """A home with a reference and three days of logged traffic shifted by ``shift`` sigmas."""
    settings = Settings(home=tmp_path / "home")
    rng = np.random.default_rng(0)
    save_reference(settings, "demo", pd.DataFrame({"x": rng.normal(size=2000)}), ["x"])
    start = pd.Timestamp("2026-12-01", tz="UTC")
    with PredictionLogger(settings, 1.0) as logger:
        for i in range(600):
            logger.log(
                "demo",
                "v1",
                f"r{i}",
                None,
                {"x": float(rng.normal(shift, 1.0))},
                {},
                False,
                1.0,
                ts=(start + pd.Timedelta(minutes=7 * i)).to_pydatetime(),
            )
    return settings


def test_no_drift_exits_zero(tmp_path: Path) -> None:
    """Traffic like the reference passes the check and records no trigger."""
    settings = _home(tmp_path, shift=0.0)
    result = CliRunner().invoke(
        app, ["--home", str(settings.root), "monitor", "check", "--now", NOW]
    )
    assert result.exit_code == 0, result.output
    assert read_triggers(settings) == []


def test_cluster_drift_builds_repository_dispatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-sigma shift exits 1 and prints the GitHub dispatch it would send (dry run)."""
    settings = _home(tmp_path, shift=1.0)
    monkeypatch.setenv("SHELFOPS_PROFILE", "cluster")
    monkeypatch.setenv("SHELFOPS_MONITOR_GITHUB_REPOSITORY", "acme/shelfops")
    monkeypatch.setenv("GITHUB_TOKEN", "t0k")
    result = CliRunner().invoke(
        app,
        ["--home", str(settings.root), "monitor", "check", "--now", NOW, "--retrain", "--dry-run"],
    )
    output = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "significant drift" in output
    assert "POST https://api.github.com/repos/acme/shelfops/dispatches" in output
    assert "drift-detected" in output and "t0k" not in output
    assert read_triggers(settings)[-1]["models"] == ["demo"]
