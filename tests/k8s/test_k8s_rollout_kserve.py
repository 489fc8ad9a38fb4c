"""The KServe backend drives a real KServeClient against a fake InferenceService API server.

The fake serves the chart's rendered inference-inputs ConfigMap, the backend's only source for
the spec. Every object the client sends is validated against the shared, closed InferenceService
schema (a missing schema fails, see conftest.py); the gate is scripted since the tagged URLs are
fake.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tests.k8s.conftest import inference_inputs
from tests.k8s.fake_kserve_api import FakeKServeAPI
from tests.unit.rollout.fakes import ScriptedGate

from shelfops.rollout.backends.base import BackendError
from shelfops.rollout.backends.kserve import KServeBackend
from shelfops.rollout.engine import RolloutEngine
from shelfops.rollout.state import StateStore
from shelfops.settings import RolloutSettings, Settings

pytestmark = pytest.mark.k8s

NS = "shelfops"  # the namespace the chart is rendered into (tests/k8s/conftest.py)
REPO = "ghcr.io/shelfops/shelfops-recs"  # models.recs.image.repository of the default values
INPUTS = "shelfops-inference"


@pytest.fixture()
def api(
    isvc_validator: jsonschema.Draft7Validator,
    scenario_docs: dict[str, list[dict[str, Any]]],
) -> Iterator[FakeKServeAPI]:
    """The fake API server with the default release's inputs ConfigMap, validating writes."""
    fake = FakeKServeAPI(isvc_validator)
    configmap = inference_inputs(scenario_docs["default"])
    assert configmap is not None
    fake.configmaps[(NS, INPUTS)] = configmap
    fake.url = fake.start()  # type: ignore[attr-defined]
    yield fake
    fake.stop()


@pytest.fixture()
def config(api: FakeKServeAPI, tmp_path: Path) -> RolloutSettings:
    """Rollout settings with a kubeconfig that points KServeClient at the fake server."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": api.url}}],  # type: ignore[attr-defined]
                "users": [{"name": "fake", "user": {"token": "test-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    return RolloutSettings(
        namespace=NS,
        kubeconfig=kubeconfig,
        steps=[10, 50, 100],
        ready_timeout_s=2,
    )


def _engine(tmp_path: Path, config: RolloutSettings, gate: ScriptedGate) -> RolloutEngine:
    backend = KServeBackend(Settings(home=tmp_path / "home"), config, poll_interval_s=0.05)
    return RolloutEngine(
        backend,
        StateStore(tmp_path / "home" / "rollout"),
        gate,
        config,
        actor="ci-bot",
        trigger="github-actions:cd#1",
    )


def _canary_percents(api: FakeKServeAPI) -> list[int | None]:
    return [
        r["body"]["spec"]["predictor"].get("canaryTrafficPercent")
        for r in api.requests
        if r["method"] in {"POST", "PATCH", "PUT"}
    ]


def test_canary_promotion_through_kserve_client(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """Create v1, canary v2 at 0/10/50/100% with tagged URLs to the gate, promote; all valid."""
    gate = ScriptedGate()
    first = _engine(tmp_path, config, gate).deploy("recs", "v1")
    assert first.outcome == "promoted"
    assert api.served_images(NS, "recs") == {f"{REPO}:v1": 100}
    result = _engine(tmp_path, config, gate).deploy("recs", "v2")
    assert result.outcome == "promoted", result.reason
    assert [r["method"] for r in api.requests if r["method"] != "GET"] == [
        "POST",
        "PUT",
        "PATCH",
        "PATCH",
        "PATCH",
        "PATCH",
        "PUT",
    ]
    assert _canary_percents(api) == [None, None, 0, 10, 50, 100, None]
    assert all("merge-patch" in r["content_type"] for r in api.requests if r["method"] == "PATCH")
    canary_url, stable_url, _ = gate.runs[-1]
    assert canary_url.startswith("http://latest-") and stable_url.startswith("http://prev-")
    assert api.served_images(NS, "recs") == {f"{REPO}:v2": 100}
    stored = api.objects[(NS, "recs")]
    assert stored["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    assert stored["metadata"]["labels"]["shelfops.io/model-version"] == "v2"
    (container,) = stored["spec"]["predictor"]["containers"]
    assert container["image"] == f"{REPO}:v2" and container["ports"][0]["containerPort"] == 8080
    assert api.schema_errors == []


def test_failed_gate_sets_canary_to_zero_and_restores_previous_spec(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """A breach at 50% patches canaryTrafficPercent 0, then replaces the spec with v1's."""
    _engine(tmp_path, config, ScriptedGate()).deploy("recs", "v1")
    api.requests.clear()
    result = _engine(tmp_path, config, ScriptedGate(fail_at={50})).deploy("recs", "v2")
    assert result.outcome == "rolled_back"
    writes = [r for r in api.requests if r["method"] in {"PATCH", "PUT"}]
    assert _canary_percents(api) == [0, 10, 50, 0, None]
    assert writes[-1]["method"] == "PUT"
    (container,) = writes[-1]["body"]["spec"]["predictor"]["containers"]
    assert container["image"] == f"{REPO}:v1"
    assert api.served_images(NS, "recs") == {f"{REPO}:v1": 100}
    assert api.schema_errors == []


def test_never_ready_revision_gets_no_traffic(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """A revision that never becomes ready stays at 0% and is rolled back to v1."""
    _engine(tmp_path, config, ScriptedGate()).deploy("recs", "v1")
    api.never_ready.add(f"{REPO}:v2")
    api.requests.clear()
    gate = ScriptedGate()
    result = _engine(tmp_path, config, gate).deploy("recs", "v2")
    assert result.outcome == "rolled_back" and "not ready" in result.reason
    assert not gate.runs and _canary_percents(api) == [0, None]
    assert api.served_images(NS, "recs") == {f"{REPO}:v1": 100}
    assert api.schema_errors == []


def test_manual_rollback_and_state_from_the_cluster(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """A fresh runner (no local state) reads versions from the cluster and rolls back to v1."""
    _engine(tmp_path, config, ScriptedGate()).deploy("recs", "v1")
    _engine(tmp_path, config, ScriptedGate()).deploy("recs", "v2")
    runner = tmp_path / "other-runner"
    engine = _engine(runner, config, ScriptedGate())
    state, seen = engine.status("recs")
    assert state.stable_version == seen.stable_version == "v2"
    engine.rollback("recs", to_version="v1", reason="INC-7")
    assert api.served_images(NS, "recs") == {f"{REPO}:v1": 100}
    assert api.schema_errors == []


def test_schema_catches_a_misspelt_field(isvc_validator: jsonschema.Draft7Validator) -> None:
    """The fake's validator rejects unknown fields (the check above can fail)."""
    fake = FakeKServeAPI(isvc_validator)
    fake._validate(
        "POST",
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "x"},
            "spec": {"predictor": {"canaryTraficPercent": 10}},
        },
    )
    assert any("canaryTraficPercent" in e for e in fake.schema_errors)


def _set_input(api: FakeKServeAPI, model: str, change: Callable[[dict[str, Any]], None]) -> None:
    """What `helm upgrade` with new values does: rewrite the inputs ConfigMap, nothing else."""
    configmap = copy.deepcopy(api.configmaps[(NS, INPUTS)])
    inputs = json.loads(configmap["data"][f"{model}.json"])
    change(inputs)
    configmap["data"][f"{model}.json"] = json.dumps(inputs)
    api.configmaps[(NS, INPUTS)] = configmap


def test_helm_upgrade_mid_rollout_reaches_the_next_step_without_reverting_it(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """New chart inputs mid-canary reach the next write; image and canary % stay the engine's."""
    _engine(tmp_path, config, ScriptedGate()).deploy("recs", "v1")
    limits = {"cpu": "2", "memory": "3Gi"}

    class UpgradeAtTen(ScriptedGate):
        def run(self, model: str, canary_url: str, stable_url: str | None, **kw: Any) -> Any:
            if kw.get("label", "").endswith("step10"):  # the release is upgraded mid-canary
                _set_input(api, model, lambda i: i["resources"].update(limits=limits))
            return super().run(model, canary_url, stable_url, **kw)

    api.requests.clear()
    result = _engine(tmp_path, config, UpgradeAtTen()).deploy("recs", "v2")
    assert result.outcome == "promoted", result.reason
    writes = [r["body"]["spec"]["predictor"] for r in api.requests if r["method"] != "GET"]
    assert [w.get("canaryTrafficPercent") for w in writes] == [0, 10, 50, 100, None]
    images = {w["containers"][0]["image"] for w in writes}
    assert images == {f"{REPO}:v2"}
    resources = [w["containers"][0]["resources"]["limits"] for w in writes]
    assert limits not in resources[:2] and resources[2:] == [limits] * 3
    assert api.schema_errors == []


def test_missing_inputs_configmap_says_what_to_do(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """Without the chart's inputs the backend refuses to invent a spec and names the fix."""
    api.configmaps.clear()
    backend = KServeBackend(Settings(home=tmp_path / "home"), config, poll_interval_s=0.05)
    with pytest.raises(BackendError, match="install the Helm chart"):
        backend.start_canary("recs", "v1", None)
    assert not [r for r in api.requests if r["method"] == "POST"]


def test_inputs_of_another_release_are_refused_before_any_write(
    api: FakeKServeAPI, config: RolloutSettings, tmp_path: Path
) -> None:
    """A chart that still sets canaryTrafficPercent (another release) is refused, nothing sent."""
    _set_input(api, "recs", lambda i: i.update(canaryTrafficPercent=10))
    backend = KServeBackend(Settings(home=tmp_path / "home"), config, poll_interval_s=0.05)
    with pytest.raises(BackendError, match="same release"):
        backend.start_canary("recs", "v1", None)
    assert [r for r in api.requests if r["method"] != "GET"] == []
