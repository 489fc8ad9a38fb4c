"""Rendered custom resources and the engine's InferenceServices validate against the CRD schemas."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from shelfops.rollout.inferenceservice import IsvcSpec, build_inference_service, to_manifest

pytestmark = pytest.mark.k8s

Errors = Callable[[jsonschema.Draft7Validator, dict[str, Any]], list[str]]


def _isvcs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "InferenceService"]


def test_engine_inferenceservices_validate(
    scenario: str,
    engine_docs: dict[str, list[dict[str, Any]]],
    isvc_validator: jsonschema.Draft7Validator,
    schema_errors: Errors,
) -> None:
    """The engine's InferenceServices from each scenario's inputs are valid KServe v1beta1."""
    isvcs = _isvcs(engine_docs[scenario])
    assert isvcs, f"{scenario} renders no inference inputs"
    for isvc in isvcs:
        assert schema_errors(isvc_validator, isvc) == [], isvc["metadata"]["name"]


def test_rendered_prometheus_rules_validate(
    scenario: str,
    scenario_docs: dict[str, list[dict[str, Any]]],
    rule_validator: jsonschema.Draft7Validator,
    schema_errors: Errors,
) -> None:
    """Every rendered PrometheusRule is valid prometheus-operator v1."""
    for rule in (d for d in scenario_docs[scenario] if d["kind"] == "PrometheusRule"):
        assert schema_errors(rule_validator, rule) == []


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "port-as-string": lambda d: d["spec"]["predictor"]["containers"][0]["ports"][0].update(
        containerPort="8080"
    ),
    "typo-canary-field": lambda d: d["spec"]["predictor"].update(canaryTraficPercent=10),
    "replicas-as-string": lambda d: d["spec"]["predictor"].update(minReplicas="one"),
    "container-without-name": lambda d: d["spec"]["predictor"]["containers"][0].pop("name"),
    "probe-path-as-list": lambda d: d["spec"]["predictor"]["containers"][0]["readinessProbe"][
        "httpGet"
    ].update(path=["/v2/health/ready"]),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_broken_inferenceservice_is_rejected(
    breakage: str,
    engine_docs: dict[str, list[dict[str, Any]]],
    isvc_validator: jsonschema.Draft7Validator,
    schema_errors: Errors,
) -> None:
    """A deliberately broken InferenceService fails the schema (the check has teeth)."""
    broken = copy.deepcopy(_isvcs(engine_docs["default"])[0])
    BREAKAGES[breakage](broken)
    assert schema_errors(isvc_validator, broken), f"{breakage} was accepted"


def test_engine_manifest_validates(
    isvc_validator: jsonschema.Draft7Validator, schema_errors: Errors
) -> None:
    """to_manifest(build_inference_service(...)) is valid KServe v1beta1, canary or not."""
    for canary in (None, 0, 10, 100):
        spec = IsvcSpec(
            model="demand",
            image="ghcr.io/shelfops/shelfops-demand:20261120-3f9c2ab",
            namespace="shelfops",
            model_version="20261120-3f9c2ab",
            canary_traffic_percent=canary,
            min_replicas=0,
            max_replicas=4,
            labels={"app.kubernetes.io/instance": "shelfops"},
            env={"SHELFOPS_LOG_LEVEL": "info"},
        )
        manifest = to_manifest(build_inference_service(spec))
        assert schema_errors(isvc_validator, manifest) == []
        assert manifest["spec"]["predictor"].get("canaryTrafficPercent") == canary


def test_engine_manifest_is_camel_case() -> None:
    """to_manifest emits the API's camelCase keys, not the SDK's snake_case attributes."""
    manifest = to_manifest(
        build_inference_service(IsvcSpec(model="recs", image="x:1", namespace="ns"))
    )
    predictor = manifest["spec"]["predictor"]
    assert "minReplicas" in predictor and "min_replicas" not in predictor
    assert "readinessProbe" in predictor["containers"][0]
