"""Compile and submit: committed YAML is fresh; kfp.Client requests carry the right run/schedule."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from shelfops.orchestration.cluster import compile_pipeline, cron6, default_compiled_path, submit

pytestmark = pytest.mark.unit

_REPLIES = {
    ("GET", "/apis/v2beta1/healthz"): {"multi_user": False},
    ("GET", "/apis/v2beta1/experiments"): {
        "experiments": [{"experiment_id": "exp-1", "display_name": "shelfops"}],
        "total_size": 1,
    },
    ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "exp-1", "display_name": "shelfops"},
    ("POST", "/apis/v2beta1/runs"): {"run_id": "run-1", "display_name": "r"},
    ("POST", "/apis/v2beta1/recurringruns"): {"recurring_run_id": "rr-1", "display_name": "r"},
}


class _FakeKfp(BaseHTTPRequestHandler):
    """Records every request and answers like the KFP v2beta1 API would."""

    requests: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = self.path.split("?")[0]
        self.server.requests.append({"method": self.command, "path": path, "body": body})  # type: ignore[attr-defined]
        reply = _REPLIES.get((self.command, path))
        self.send_response(200 if reply is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(reply or {"error": "not found"}).encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_kfp() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfp)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    server.shutdown()


def test_compiled_yaml_is_fresh(tmp_path: Path) -> None:
    """The committed pipelines/compiled/training_pipeline.yaml equals a fresh compile."""
    fresh = compile_pipeline(tmp_path / "training_pipeline.yaml")
    committed = default_compiled_path()
    assert committed.exists(), "run `make compile-pipelines` and commit the result"
    assert fresh.read_text() == committed.read_text(), (
        "pipelines/compiled is stale: run `make compile-pipelines` and commit the result"
    )


def test_compile_swaps_the_image_everywhere(tmp_path: Path) -> None:
    """--image replaces the image of every executor and nothing else."""
    out = compile_pipeline(tmp_path / "p.yaml", image="ghcr.io/acme/shelfops:abc")
    spec, platform = yaml.safe_load_all(out.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) >= 10
    assert platform["platforms"]["kubernetes"], "the volume mounts must survive the image swap"
    assert {e["container"]["image"] for e in executors.values()} == {"ghcr.io/acme/shelfops:abc"}


def _tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task of every DAG in a pipeline spec (root and nested components)."""
    dags = [spec["root"]["dag"]] + [
        c["dag"] for c in spec.get("components", {}).values() if "dag" in c
    ]
    return [task for dag in dags for task in dag["tasks"].values()]


def test_every_step_shares_the_home_volume_with_caching_off(tmp_path: Path) -> None:
    """Each executor mounts the home_claim PVC at SHELFOPS_HOME; no task is cached."""
    spec, platform = yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(mounts) == set(executors)
    for name, executor in executors.items():
        (pvc,) = mounts[name]["pvcMount"]
        assert pvc["mountPath"] == "/var/lib/shelfops", name
        assert pvc["pvcNameParameter"]["componentInputParameter"].endswith("home_claim"), name
        env = {e["name"]: e["value"] for e in executor["container"]["env"]}
        assert env["SHELFOPS_HOME"] == pvc["mountPath"], name
    assert spec["root"]["inputDefinitions"]["parameters"]["home_claim"]["defaultValue"] == (
        "shelfops-home"
    )
    tasks = _tasks(spec)
    assert len(tasks) >= 10
    assert not [t for t in tasks if t.get("cachingOptions", {}).get("enableCache")]


def test_submit_creates_one_run_with_arguments_and_image(fake_kfp: Any) -> None:
    """A one-off submit posts one run whose spec carries the arguments and the chosen image."""
    host, requests = fake_kfp
    created = submit(host, {"model": "recs", "home": "/mnt/shelfops"}, image="reg/shelfops:1")
    assert created == {"kind": "run", "id": "run-1", "name": created["name"]}
    runs = [r for r in requests if r["path"] == "/apis/v2beta1/runs"]
    assert len(runs) == 1
    body = runs[0]["body"]
    assert body["experiment_id"] == "exp-1"
    assert body["runtime_config"]["parameters"] == {"model": "recs", "home": "/mnt/shelfops"}
    spec = body["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "shelfops-training"
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"reg/shelfops:1"}
    assert body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    assert not [t for t in _tasks(spec) if t.get("cachingOptions", {}).get("enableCache")]


def test_submit_with_schedule_creates_a_weekly_recurring_run(fake_kfp: Any) -> None:
    """--schedule posts a recurring run with KFP's 6-field cron and no one-off run."""
    host, requests = fake_kfp
    created = submit(host, {"model": "all"}, schedule="23 3 * * 1")
    assert created["kind"] == "recurring_run" and created["id"] == "rr-1"
    assert not [r for r in requests if r["path"] == "/apis/v2beta1/runs"]
    (job,) = [r["body"] for r in requests if r["path"] == "/apis/v2beta1/recurringruns"]
    assert job["trigger"]["cron_schedule"]["cron"] == "0 23 3 * * 1"
    assert job["mode"] == "ENABLE"
    assert job["runtime_config"]["parameters"] == {"model": "all"}
    spec = job["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "shelfops-training"
    # A weekly retrain with unchanged arguments must train again: no step may hit the cache.
    assert not [t for t in _tasks(spec) if t.get("cachingOptions", {}).get("enableCache")]


def test_cron6_rejects_malformed_schedules() -> None:
    """A schedule that is neither 5- nor 6-field cron is refused with the expected format."""
    assert cron6("0 23 3 * * 1") == "0 23 3 * * 1"
    with pytest.raises(ValueError, match="5 fields"):
        cron6("weekly")
