"""One owner for the InferenceService spec: the chart renders inputs, the engine builds the object.

The chart renders no InferenceService (so `helm upgrade` cannot revert a rollout in progress);
the rollout engine's object, built from the rendered inputs ConfigMap by the one builder, is
valid KServe v1beta1 and carries every setting of the chart's values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from tests.k8s.conftest import NAMESPACE, RELEASE, inference_inputs

from shelfops.rollout.inferenceservice import (
    CONTAINER_PORT,
    LIVENESS_PATH,
    READINESS_PATH,
    TAG_ROUTING_ANNOTATION,
    IsvcSpec,
    build_inference_service,
    spec_from_inputs,
    to_manifest,
)

pytestmark = pytest.mark.k8s

Docs = list[dict[str, Any]]
Errors = Callable[[jsonschema.Draft7Validator, dict[str, Any]], list[str]]


def _image(image: dict[str, str], default_tag: str) -> str:
    if image.get("digest"):
        return f"{image['repository']}@{image['digest']}"
    return f"{image['repository']}:{image.get('tag') or default_tag}"


def test_chart_renders_no_inferenceservice(
    scenario: str, scenario_docs: dict[str, Docs], scenario_values: Callable[[str], Any]
) -> None:
    """No values scenario renders an InferenceService; the inputs cover every enabled model."""
    docs = scenario_docs[scenario]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "InferenceService"] == []
    assert not any(str(d.get("apiVersion", "")).startswith("serving.kserve.io/") for d in docs)
    values = scenario_values(scenario)
    configmap = inference_inputs(docs)
    assert configmap is not None
    enabled = {f"{n}.json" for n, m in values["models"].items() if m["enabled"]}
    assert set(configmap["data"]) == enabled


def test_engine_object_validates_and_carries_the_chart_settings(
    scenario: str,
    scenario_docs: dict[str, Docs],
    engine_docs: dict[str, Docs],
    scenario_values: Callable[[str], Any],
    isvc_validator: jsonschema.Draft7Validator,
    schema_errors: Errors,
) -> None:
    """Image, env, Secret env, resources, replicas, probes, security, labels, volumes, logger."""
    values = scenario_values(scenario)
    docs = scenario_docs[scenario]
    built = {d["metadata"]["name"]: d for d in engine_docs[scenario]}
    assert set(built) == {n for n, m in values["models"].items() if m["enabled"]}
    (policy,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-inference")
    ] or [None]
    for name, isvc in built.items():
        model = values["models"][name]
        assert schema_errors(isvc_validator, isvc) == [], name
        assert isvc["metadata"]["namespace"] == NAMESPACE
        annotations = isvc["metadata"].get("annotations") or {}
        assert (annotations.get(TAG_ROUTING_ANNOTATION) == "true") is values["inference"][
            "tagRouting"
        ]
        predictor = isvc["spec"]["predictor"]
        assert "canaryTrafficPercent" not in predictor  # a first revision takes all traffic
        assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
            model["minReplicas"],
            model["maxReplicas"],
        )
        sa = values["inference"]["serviceAccount"]["name"] or f"{RELEASE}-inference"
        assert predictor["serviceAccountName"] == sa
        assert predictor["automountServiceAccountToken"] is False
        pull = [{"name": s} for s in values["image"]["pullSecrets"]]
        assert predictor.get("imagePullSecrets", []) == pull
        if policy is not None:  # the NetworkPolicy selects the engine's pods
            selector = policy["spec"]["podSelector"]["matchLabels"]
            assert selector.items() <= predictor["labels"].items(), name
        (container,) = predictor["containers"]
        assert container["image"] == _image(model["image"], model["version"])
        assert container["imagePullPolicy"] == values["image"]["pullPolicy"]
        assert predictor["labels"]["shelfops.io/model-version"] == str(model["version"])
        assert container["resources"] == model["resources"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        for key, value in model["env"].items():
            assert env[key] == value, f"{name}: env {key}"
        assert env["SHELFOPS_FEAST_REGISTRY"] == values["featureStore"]["registry"]["path"]
        assert env["SHELFOPS_REDIS_URL"].startswith(("redis://", "rediss://"))
        secret_refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
        }
        auth = values["redis"]["auth"]
        assert secret_refs == (
            {
                "SHELFOPS_REDIS_PASSWORD": {
                    "name": auth["existingSecret"],
                    "key": auth["existingSecretKey"],
                }
            }
            if auth["existingSecret"]
            else {}
        )
        assert container["ports"] == [
            {"containerPort": CONTAINER_PORT, "name": "http1", "protocol": "TCP"}
        ]
        assert container["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": 8080}
        assert container["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": 8080}
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["allowPrivilegeEscalation"] is False
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in predictor["volumes"]
            if "persistentVolumeClaim" in v
        ]
        home = values["home"]["persistence"]
        assert claims == ([home["existingClaim"] or f"{RELEASE}-home"] if home["enabled"] else [])


def test_payload_logger_reaches_the_sink(
    scenario_docs: dict[str, Docs],
    engine_docs: dict[str, Docs],
    scenario_values: Callable[[str], dict[str, Any]],
) -> None:
    """With payloadSink on, every engine-built model logs to the sink Service the chart deploys."""
    values = scenario_values("production")
    assert values["payloadSink"]["enabled"], "the production scenario exercises the sink"
    docs = scenario_docs["production"]
    (service,) = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("payload-sink")
    ]
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"
    assert engine_docs["production"]
    for isvc in engine_docs["production"]:
        assert isvc["spec"]["predictor"]["logger"] == {"mode": "all", "url": url}
    assert not any(d["metadata"]["name"].endswith("payload-sink") for d in scenario_docs["default"])
    for isvc in engine_docs["default"]:
        assert "logger" not in isvc["spec"]["predictor"]


def test_later_versions_keep_the_chart_inputs(scenario_docs: dict[str, Docs]) -> None:
    """A canary of a later tag is the chart's repository:tag with every other input unchanged."""
    configmap = inference_inputs(scenario_docs["production"])
    assert configmap is not None
    inputs = json.loads(configmap["data"]["recs.json"])
    first = to_manifest(build_inference_service(spec_from_inputs(inputs)))
    canary = to_manifest(build_inference_service(spec_from_inputs(inputs, "20261201-abc", 10)))
    (c1,), (c2,) = (
        first["spec"]["predictor"]["containers"],
        canary["spec"]["predictor"]["containers"],
    )
    assert c1["image"].startswith("ghcr.io/shelfops/shelfops-recs@sha256:")
    assert c2["image"] == "ghcr.io/shelfops/shelfops-recs:20261201-abc"
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    for key in ("env", "resources", "securityContext", "volumeMounts", "imagePullPolicy"):
        assert c1[key] == c2[key], key


def test_inputs_from_another_release_are_refused(scenario_docs: dict[str, Docs]) -> None:
    """An inputs document with unknown or missing keys fails with a clear error, not a bad spec."""
    configmap = inference_inputs(scenario_docs["default"])
    assert configmap is not None
    inputs = json.loads(configmap["data"]["recs.json"])
    with pytest.raises(ValueError, match="unknown keys"):
        spec_from_inputs({**inputs, "canaryTrafficPercent": 10})
    with pytest.raises(ValueError, match="image_repository"):
        spec_from_inputs({k: v for k, v in inputs.items() if k != "image_repository"})


def test_isvc_spec_rejects_bad_inputs() -> None:
    """IsvcSpec refuses out-of-range canary percentages, replica bounds and bad Secret refs."""
    with pytest.raises(ValueError):
        IsvcSpec(model="recs", image="x:1", namespace="n", canary_traffic_percent=101)
    with pytest.raises(ValueError):
        IsvcSpec(model="recs", image="x:1", namespace="n", min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError):
        IsvcSpec(model="", image="x:1", namespace="n")
    with pytest.raises(ValueError):
        IsvcSpec(model="recs", image="x:1", namespace="n", secret_env={"P": {"name": "s"}})
