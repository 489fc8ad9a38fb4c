"""Fault drills on the local runtime: real `bentoml serve` revisions, splitter, Locust gate.

One trained recs model is copied into four versions of the model store (a "retrained" model
each); the drills share one runtime and run in order: first deployment, healthy canary promoted,
slow canary rolled back, never-ready canary rolled back, manual rollback to the warm previous
version. A background client calls the stable endpoint throughout and must see no failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.conftest import make_home
from tests.integration.conftest import free_port

from shelfops.data.ingest import load_clean
from shelfops.features.build import build_feature_tables
from shelfops.features.store import FeatureRepo
from shelfops.rollout.backends.local import LocalBackend
from shelfops.rollout.engine import RolloutEngine, RolloutResult
from shelfops.rollout.factory import build_engine
from shelfops.settings import RolloutSettings, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

CLONE = """
import shutil, sys, bentoml
src = bentoml.models.get("shelfops_recs:latest")
for version in sys.argv[1:]:
    with bentoml.models.create(
        f"shelfops_recs:{version}", labels=dict(src.info.labels), metadata=dict(src.info.metadata)
    ) as new:
        shutil.copytree(src.path_of(""), new.path, dirs_exist_ok=True)
print("ok")
"""
VERSIONS = ("v1", "v2", "v3slow", "v4never")


def _cli(
    home: Path, *args: str, module: str = "shelfops.cli.main"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHELFOPS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@dataclass
class Runtime:
    """The drills' shared home, settings and rollout settings."""

    settings: Settings
    config: RolloutSettings
    customers: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    def engine(
        self, revision_env: dict[str, str] | None = None, **overrides: object
    ) -> RolloutEngine:
        config = self.config.model_copy(update=overrides)
        backend = LocalBackend(
            self.settings, config, resolve=lambda _s, _m, v: v, revision_env=revision_env
        )
        return build_engine(self.settings, "local", config=config, backend=backend)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.config.recs_port}"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, small_exports) -> Iterator[Runtime]:
    """A home with a trained recs model stored under four versions; runtime stopped at the end."""
    settings, _ = make_home(tmp_path_factory.mktemp("drills"), small_exports)
    build_feature_tables(load_clean(settings.root), settings.features_dir)
    repo = FeatureRepo(settings)
    repo.apply()
    repo.materialize()
    done = _cli(
        settings.root, "train", "--task", "recs", "--recs-margin", "-1", "--accept-served-gap"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    env = {**os.environ, "BENTOML_HOME": str(settings.bentoml_home)}
    cloned = subprocess.run(
        [sys.executable, "-c", CLONE, *VERSIONS], env=env, capture_output=True, text=True
    )
    assert cloned.returncode == 0, cloned.stderr
    config = RolloutSettings(
        steps=[50, 100],
        gate_users=2,
        gate_duration_s=3,
        max_p95_ms=250,
        p95_slack_ms=40,  # two 3 s runs on a shared 2-core box: p95 jitters by tens of ms
        max_p99_ms=1000,
        min_rps=1,
        ready_timeout_s=90,
        drain_timeout_s=5,
        recs_port=free_port(),
        demand_port=free_port(),
    )
    import pandas as pd

    customers = pd.read_parquet(settings.clean_dir / "customers.parquet")["customer_id"]
    rt = Runtime(settings, config, [str(c) for c in customers.head(50)])
    yield rt
    LocalBackend(settings, config).stop("recs")
    print("drill timings:", json.dumps(rt.timings))


class Caller(threading.Thread):
    """Calls the stable endpoint in a loop and counts failed requests."""

    def __init__(self, url: str, customers: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.customers = url, customers
        self.ok = 0
        self.failures: list[str] = []
        self.versions: dict[str, int] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self.stopping.is_set():
                i += 1
                body = {"customer_id": self.customers[i % len(self.customers)], "k": 5}
                try:
                    resp = client.post(f"{self.url}/recommend", json=body)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if resp.status_code != 200 or "items" not in resp.json():
                    self.failures.append(f"{resp.status_code} {resp.text[:200]}")
                    continue
                self.ok += 1
                rev = resp.headers.get("X-ShelfOps-Revision", "?")
                self.versions[rev] = self.versions.get(rev, 0) + 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=40)


def _events(rt: Runtime, rollout_id: str | None) -> list[dict[str, object]]:
    entries = (rt.settings.root / "rollout" / "history.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, entries) if e["rollout_id"] == rollout_id]


def _deploy(rt: Runtime, version: str, **kwargs: object) -> RolloutResult:
    env = kwargs.pop("revision_env", None)
    engine = rt.engine(revision_env=env, **kwargs)  # type: ignore[arg-type]
    return engine.deploy("recs", version)


def test_first_deployment_is_gated_and_served(runtime: Runtime) -> None:
    """The first version starts, passes the gate alone and takes the endpoint's traffic."""
    result = _deploy(runtime, "v1")
    assert result.outcome == "promoted", result.reason
    resp = httpx.post(f"{runtime.endpoint}/recommend", json={"customer_id": "12346", "k": 3})
    assert resp.status_code == 200 and resp.headers["X-ShelfOps-Revision"] == "v1"


def test_healthy_canary_promoted_without_failed_requests(runtime: Runtime) -> None:
    """A healthy v2 passes every step and is promoted; callers of the endpoint see no failure."""
    caller = Caller(runtime.endpoint, runtime.customers)
    caller.start()
    try:
        result = _deploy(runtime, "v2")
    finally:
        caller.stop()
    assert result.outcome == "promoted", result.reason
    assert [v.passed for v in result.verdicts] == [True, True]
    assert not caller.failures, caller.failures[:5]
    assert caller.ok > 20 and caller.versions.get("v2", 0) > 0
    promoted = [e for e in _events(runtime, result.state.rollout_id) if e["event"] == "promoted"]
    runtime.timings["promotion_s"] = float(promoted[0]["promotion_s"])  # type: ignore[arg-type]
    runtime.timings["gate_s"] = result.verdicts[0].duration_s
    resp = httpx.post(f"{runtime.endpoint}/recommend", json={"customer_id": "12346", "k": 3})
    assert resp.headers["X-ShelfOps-Revision"] == "v2"


def test_slow_canary_rolled_back_automatically(runtime: Runtime) -> None:
    """A canary with 300 ms injected latency fails the gate at 50% and is rolled back in < 10 s."""
    caller = Caller(runtime.endpoint, runtime.customers)
    caller.start()
    try:
        result = _deploy(
            runtime, "v3slow", revision_env={"SHELFOPS_SERVING_INJECT_LATENCY_MS": "300"}
        )
    finally:
        caller.stop()
    assert result.outcome == "rolled_back"
    assert "p95" in result.reason
    assert len(result.verdicts) == 1 and not result.verdicts[0].passed
    assert not caller.failures, caller.failures[:5]
    events = _events(runtime, result.state.rollout_id)
    (done,) = [e for e in events if e["event"] == "rolled_back"]
    assert done["trigger"] == "gate" and done["stable_version"] == "v2"
    runtime.timings["auto_rollback_s"] = float(done["rollback_s"])  # type: ignore[arg-type]
    assert float(done["rollback_s"]) < 10  # type: ignore[arg-type]
    seen = LocalBackend(runtime.settings, runtime.config).observe("recs")
    assert "v3slow" not in {r.version for r in seen.revisions}
    assert seen.stable_version == "v2"


def test_never_ready_canary_gets_no_traffic_and_is_rolled_back(runtime: Runtime) -> None:
    """A canary whose readiness stays 503 never enters the routes and is rolled back."""
    caller = Caller(runtime.endpoint, runtime.customers)
    caller.start()
    try:
        result = _deploy(
            runtime,
            "v4never",
            revision_env={"SHELFOPS_SERVING_NEVER_READY": "true"},
            ready_timeout_s=8,
        )
    finally:
        caller.stop()
    assert result.outcome == "rolled_back" and "not ready" in result.reason
    assert not result.verdicts
    events = _events(runtime, result.state.rollout_id)
    assert all(e["canary_percent"] == 0 for e in events)
    assert "traffic" not in {e["event"] for e in events}
    assert not caller.failures and set(caller.versions) == {"v2"}


def test_manual_rollback_to_warm_previous_within_ten_seconds(runtime: Runtime) -> None:
    """The rollback command after a promotion returns to v1 (kept warm) in under 10 s."""
    caller = Caller(runtime.endpoint, runtime.customers)
    caller.start()
    started = time.perf_counter()
    try:
        done = _cli(
            runtime.settings.root,
            "rollback",
            "--model",
            "recs",
            "--target",
            "local",
            "--reason",
            "drill",
            module="shelfops.cli.rollout",  # the incident fast path: rollout code only
        )
    finally:
        elapsed = time.perf_counter() - started
        caller.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    (last,) = [e for e in _events_all(runtime) if e["event"] == "rolled_back"][-1:]
    runtime.timings["manual_rollback_s"] = float(last["rollback_s"])  # type: ignore[arg-type]
    runtime.timings["manual_rollback_cli_s"] = elapsed
    assert float(last["rollback_s"]) < 10  # type: ignore[arg-type]
    assert elapsed < 10, f"rollback command took {elapsed:.1f} s"
    assert last["stable_version"] == "v1" and last["actor"]
    assert not caller.failures, caller.failures[:5]
    resp = httpx.post(f"{runtime.endpoint}/recommend", json={"customer_id": "12346", "k": 3})
    assert resp.headers["X-ShelfOps-Revision"] == "v1"
    history = _cli(runtime.settings.root, "rollout", "history", "--model", "recs", "--json")
    events = [json.loads(line)["event"] for line in history.stdout.splitlines()]
    assert events.count("promoted") == 2 and events.count("rolled_back") == 3


def _events_all(rt: Runtime) -> list[dict[str, object]]:
    lines = (rt.settings.root / "rollout" / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
