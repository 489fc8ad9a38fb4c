"""The settings the chart passes are the settings the code reads, with one Feast registry location.

Model servers are checked as the rollout engine builds them from the chart's inference inputs
(the chart renders no InferenceService).

Each rendered workload's environment is fed to the real ``Settings`` and ``FeatureRepo`` (no
cluster needed), so a variable the code ignores, a registry path that differs between the chart's
Feast ConfigMap, ShelfOps and ``feature_repo/feature_store.cluster.yaml``, or a Redis URL the store
cannot parse fails here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipelines.training import (
    CLUSTER_ENV_KEYS,
    DEFAULT_CLUSTER_ENV,
    DEFAULT_HOME_CLAIM,
    REDIS_SECRET_MOUNT,
)
from pydantic_settings import BaseSettings

import shelfops.settings
from shelfops.features.store import FeatureRepo, RedisTarget
from shelfops.settings import Settings

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]


def _containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(workload name, pod spec, container)`` for every ShelfOps workload container."""
    out = []
    for doc in docs:
        kind = doc["kind"]
        if kind == "InferenceService":
            pod = doc["spec"]["predictor"]
        elif kind == "Deployment":
            pod = doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            continue
        for container in pod["containers"]:
            if "redis" not in container["image"]:
                out.append((doc["metadata"]["name"], pod, container))
    return out


def _settings(container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container builds from its rendered environment."""
    for key in list(os.environ):
        if key.startswith("SHELFOPS_"):
            monkeypatch.delenv(key)
    for env in container.get("env", []):
        value = env.get("value", "secret-from-a-secret-ref")
        monkeypatch.setenv(env["name"], value)
    return Settings()


def test_workloads_read_every_shelfops_variable_they_are_given(
    scenario: str,
    scenario_docs: dict[str, list[dict[str, Any]]],
    engine_docs: dict[str, list[dict[str, Any]]],
) -> None:
    """Every SHELFOPS_* variable the chart sets is a field of the settings the code reads."""
    classes = [
        cls
        for cls in vars(shelfops.settings).values()
        if isinstance(cls, type) and issubclass(cls, BaseSettings) and cls is not BaseSettings
    ]
    known = {
        f"{cls.model_config['env_prefix']}{name.upper()}"
        for cls in classes
        for name in cls.model_fields
    }
    for name, _, container in _containers(scenario_docs[scenario] + engine_docs[scenario]):
        for env in container.get("env", []):
            if env["name"].startswith("SHELFOPS_"):
                assert env["name"] in known, f"{scenario}/{name}: nothing reads {env['name']}"


def test_one_registry_location_and_a_redis_url_the_store_parses(
    scenario: str,
    scenario_docs: dict[str, list[dict[str, Any]]],
    engine_docs: dict[str, list[dict[str, Any]]],
    scenario_values: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Values, Feast ConfigMap, feature_store.cluster.yaml and FeatureRepo agree on the registry."""
    docs = scenario_docs[scenario] + engine_docs[scenario]
    registry_path = scenario_values(scenario)["featureStore"]["registry"]["path"]
    feast_cms = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-feast")
    ]
    chart_feast = {}
    for cm in feast_cms:
        chart_feast = yaml.safe_load(cm["data"]["feature_store.yaml"])
        assert chart_feast["registry"]["path"] == registry_path
    cluster_yaml = yaml.safe_load(
        (ROOT / "feature_repo" / "feature_store.cluster.yaml").read_text()
    )
    assert cluster_yaml["registry"]["path"] == "${SHELFOPS_FEAST_REGISTRY}"
    checked = 0
    for name, _, container in _containers(docs):
        if not any(e["name"] == "SHELFOPS_REDIS_URL" for e in container.get("env", [])):
            continue  # not a feature reader (e.g. the payload sink)
        settings = _settings(container, monkeypatch)
        assert settings.profile == "cluster", name
        registry = FeatureRepo(settings).repo_config().registry.path
        assert registry == registry_path, f"{scenario}/{name}: registry"
        expanded = os.path.expandvars(cluster_yaml["registry"]["path"])
        assert expanded == registry, f"{scenario}/{name}: feature_store.cluster.yaml"
        target = RedisTarget.parse(settings.redis_url or "")
        if chart_feast:
            assert chart_feast["online_store"]["connection_string"].startswith(
                f"{target.host}:{target.port}"
            ), f"{scenario}/{name}: Redis"
        # A file registry must be on a volume the pod mounts, readable where SHELFOPS_HOME is.
        if "://" not in registry:
            mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
            assert any(registry.startswith(m.rstrip("/") + "/") for m in mounts), (
                f"{scenario}/{name}: registry {registry} is on no mounted volume {mounts}"
            )
            assert registry.startswith(str(settings.root)), f"{scenario}/{name}: SHELFOPS_HOME"
        checked += 1
    assert checked >= 1


def test_pipeline_steps_get_the_chart_volume_and_settings(
    scenario: str,
    scenario_docs: dict[str, list[dict[str, Any]]],
    engine_docs: dict[str, list[dict[str, Any]]],
    scenario_values: Any,
) -> None:
    """Every claim a pod mounts is rendered or named as existing; the pipeline's defaults match."""
    docs = scenario_docs[scenario] + engine_docs[scenario]
    values = scenario_values(scenario)
    (env_cm,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-env")
    ]
    assert set(env_cm["data"]) == set(CLUSTER_ENV_KEYS)
    existing = values["home"]["persistence"]["existingClaim"]
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for name, pod, _ in _containers(docs):
        for volume in pod.get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim:
                assert claim in rendered | {existing}, f"{scenario}/{name}: claim {claim} missing"
    if not values.get("fullnameOverride"):  # release "shelfops": the pipeline's defaults
        assert env_cm["metadata"]["name"] == DEFAULT_CLUSTER_ENV
        if values["home"]["persistence"]["enabled"] and not existing:
            assert DEFAULT_HOME_CLAIM in rendered


def test_pipeline_steps_get_the_redis_password_from_the_secret(
    scenario: str,
    scenario_docs: dict[str, list[dict[str, Any]]],
    scenario_values: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compiled steps mount the Redis Secret; the ConfigMap names its key; Settings reads it."""
    values = scenario_values(scenario)
    (env_cm,) = [
        d
        for d in scenario_docs[scenario]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-env")
    ]
    key = values["redis"]["auth"]["existingSecretKey"]
    path = env_cm["data"]["SHELFOPS_REDIS_PASSWORD_FILE"]
    assert path == f"{REDIS_SECRET_MOUNT}/{key}"
    _, platform = yaml.safe_load_all(
        (ROOT / "pipelines" / "compiled" / "training_pipeline.yaml").read_text()
    )
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, k8s in executors.items():
        (mount,) = k8s["secretAsVolume"]
        assert mount["mountPath"] == REDIS_SECRET_MOUNT and mount["optional"] is True, name
        # The pipeline's redis_secret parameter (nested DAGs see it as pipelinechannel--...).
        param = mount["secretNameParameter"]["componentInputParameter"]
        assert param in {"redis_secret", "pipelinechannel--redis_secret"}, name
    # A step's settings: the ConfigMap's env, the Secret's key as a file under the mount.
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / key).write_text("from-the-secret\n")
    for name in list(os.environ):
        if name.startswith("SHELFOPS_"):
            monkeypatch.delenv(name)
    for name, value in env_cm["data"].items():
        monkeypatch.setenv(name, value.replace(REDIS_SECRET_MOUNT, str(secret_dir)))
    settings = Settings()
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "from-the-secret"
    assert (
        "password=from-the-secret"
        in FeatureRepo(settings).repo_config().online_store.connection_string
    )
    (secret_dir / key).unlink()  # no Secret (auth off): no password, and no failure
    assert Settings().redis_password is None
