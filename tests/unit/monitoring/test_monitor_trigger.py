"""The retraining trigger: the repository_dispatch request retrain.yml expects, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from shelfops.monitoring.trigger import (
    build_dispatch_request,
    dispatch_model,
    local_retrain_command,
)
from shelfops.settings import MonitorSettings, Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def _retrain_workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "retrain.yml").read_text())


def test_dispatch_request_matches_retrain_workflow() -> None:
    """Event type and client_payload.model are ones retrain.yml accepts; token from env."""
    monitor = MonitorSettings(github_repository="acme/shelfops")
    req = build_dispatch_request(
        monitor, ["recs"], ["recs: drift in invoices_total"], environ={"GITHUB_TOKEN": "t0k"}
    )
    assert req.get_method() == "POST"
    assert req.full_url == "https://api.github.com/repos/acme/shelfops/dispatches"
    assert req.get_header("Authorization") == "Bearer t0k"
    body = json.loads(req.data)  # type: ignore[arg-type]
    workflow = _retrain_workflow()
    on = workflow.get("on", workflow.get(True))
    assert body["event_type"] in on["repository_dispatch"]["types"]
    allowed = on["workflow_dispatch"]["inputs"]["model"]["options"]
    assert body["client_payload"]["model"] == "recs" and "recs" in allowed
    assert "invoices_total" in body["client_payload"]["reason"]


def test_dispatch_needs_repository_and_token() -> None:
    """Missing repository or token fails with a message that says what to set."""
    with pytest.raises(ValueError, match="SHELFOPS_MONITOR_GITHUB_REPOSITORY"):
        build_dispatch_request(MonitorSettings(), ["recs"], ["x"], environ={"GITHUB_TOKEN": "t"})
    with pytest.raises(ValueError, match="GITHUB_TOKEN"):
        build_dispatch_request(
            MonitorSettings(github_repository="a/b"), ["recs"], ["x"], environ={}
        )


def test_dispatch_model_and_reason_limits() -> None:
    """Several or unknown models become 'all'; long reasons are truncated."""
    assert dispatch_model(["demand"]) == "demand"
    assert dispatch_model(["demand", "recs"]) == "all"
    assert dispatch_model(["other"]) == "all"
    req = build_dispatch_request(
        MonitorSettings(github_repository="a/b"),
        ["recs"],
        ["x" * 900],
        environ={"GITHUB_TOKEN": "t"},
    )
    assert len(json.loads(req.data)["client_payload"]["reason"]) <= 500  # type: ignore[arg-type]


def test_local_retrain_runs_the_pipeline_for_this_home(tmp_path: Path) -> None:
    """Locally the trigger runs `shelfops --home HOME pipeline run --local`."""
    cmd = local_retrain_command(Settings(home=tmp_path))
    assert cmd[-3:] == ["pipeline", "run", "--local"]
    assert cmd[cmd.index("--home") + 1] == str(tmp_path.resolve())
