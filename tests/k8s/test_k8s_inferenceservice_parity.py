"""The chart's InferenceService and the rollout engine's build_inference_service() agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shelfops.rollout.inferenceservice import (
    CONTAINER_PORT,
    LIVENESS_PATH,
    READINESS_PATH,
    TAG_ROUTING_ANNOTATION,
    IsvcSpec,
    build_inference_service,
    to_manifest,
)

pytestmark = pytest.mark.k8s

NAMESPACE = "shelfops"
RELEASE = "shelfops"


def _image(image: dict[str, str], default_tag: str) -> str:
    if image.get("digest"):
        return f"{image['repository']}@{image['digest']}"
    return f"{image['repository']}:{image.get('tag') or default_tag}"


def _engine_manifest(
    name: str, values: dict[str, Any], chart_meta: dict[str, Any]
) -> dict[str, Any]:
    """What the rollout engine sends for the same inputs as the chart's values."""
    model = values["models"][name]
    helm_labels = {
        "helm.sh/chart": f"{chart_meta['name']}-{chart_meta['version']}",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/version": str(chart_meta["appVersion"]),
        "app.kubernetes.io/managed-by": "Helm",
        **values.get("commonLabels", {}),
    }
    service_account = values["inference"]["serviceAccount"]["name"] or f"{RELEASE}-inference"
    sink = values.get("payloadSink", {})
    # Helm's shelfops.fullname: the release name alone when it already contains the chart name.
    chart_name = values.get("nameOverride") or chart_meta["name"]
    fullname = values.get("fullnameOverride") or (
        RELEASE if chart_name in RELEASE else f"{RELEASE}-{chart_name}"
    )
    logger_url = (
        f"http://{fullname}-payload-sink.{NAMESPACE}.svc.cluster.local:{sink['port']}"
        if sink.get("enabled")
        else None
    )
    home = values["home"]["persistence"]
    home_claim = (home["existingClaim"] or f"{fullname}-home") if home["enabled"] else None
    spec = IsvcSpec(
        model=name,
        image=_image(model["image"], model["version"]),
        namespace=NAMESPACE,
        model_version=model["version"],
        canary_traffic_percent=model["canaryTrafficPercent"],
        min_replicas=model["minReplicas"],
        max_replicas=model["maxReplicas"],
        resources=model["resources"],
        service_account=service_account,
        labels=helm_labels,
        tag_routing=values["inference"]["tagRouting"],
        logger_url=logger_url,
        logger_mode=sink.get("mode", "all"),
        home_claim=home_claim,
    )
    return to_manifest(build_inference_service(spec))


def test_parity(
    scenario: str,
    scenario_docs: dict[str, list[dict[str, Any]]],
    scenario_values: Callable[[str], dict[str, Any]],
    chart_meta: dict[str, Any],
) -> None:
    """Image, port, probes, labels, annotation, canary %, replicas, security agree per model."""
    values = scenario_values(scenario)
    rendered = {
        d["metadata"]["name"]: d for d in scenario_docs[scenario] if d["kind"] == "InferenceService"
    }
    enabled = {n for n, m in values["models"].items() if m["enabled"]}
    assert set(rendered) == enabled
    for name, chart in rendered.items():
        engine = _engine_manifest(name, values, chart_meta)
        assert chart["apiVersion"] == engine["apiVersion"]
        assert chart["kind"] == engine["kind"]
        assert chart["metadata"]["name"] == engine["metadata"]["name"]
        assert chart["metadata"]["labels"] == engine["metadata"]["labels"], name
        assert chart["metadata"].get("annotations") == engine["metadata"].get("annotations")

        cp, ep = chart["spec"]["predictor"], engine["spec"]["predictor"]
        for field in (
            "canaryTrafficPercent",
            "minReplicas",
            "maxReplicas",
            "serviceAccountName",
            "automountServiceAccountToken",
            "labels",
            "volumes",
            "logger",
        ):
            assert cp.get(field) == ep.get(field), f"{name}: predictor.{field}"

        (cc,), (ec,) = cp["containers"], ep["containers"]
        for field in (
            "name",
            "image",
            "ports",
            "readinessProbe",
            "livenessProbe",
            "securityContext",
            "resources",
            "volumeMounts",
        ):
            assert cc.get(field) == ec.get(field), f"{name}: container.{field}"
        # The engine's env is the chart's env prefix; the chart adds cluster wiring after it.
        assert cc["env"][: len(ec["env"])] == ec["env"], f"{name}: container.env"


def test_contract_constants(scenario_docs: dict[str, list[dict[str, Any]]]) -> None:
    """The chart serves on 8080 with V2 health probes and tag routing, as DESIGN.md requires."""
    for isvc in (d for d in scenario_docs["default"] if d["kind"] == "InferenceService"):
        (container,) = isvc["spec"]["predictor"]["containers"]
        assert container["ports"][0]["containerPort"] == CONTAINER_PORT == 8080
        assert container["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": 8080}
        assert container["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": 8080}
        assert isvc["metadata"]["annotations"] == {TAG_ROUTING_ANNOTATION: "true"}
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["allowPrivilegeEscalation"] is False


def test_canary_percent_reaches_both(
    scenario_values: Callable[[str], dict[str, Any]], chart_meta: dict[str, Any]
) -> None:
    """A canary percentage set in values appears in both shapes; None omits the field in both."""
    values = scenario_values("local-kind")
    assert values["models"]["recs"]["canaryTrafficPercent"] == 10
    recs = _engine_manifest("recs", values, chart_meta)
    assert recs["spec"]["predictor"]["canaryTrafficPercent"] == 10
    values["models"]["recs"]["canaryTrafficPercent"] = None
    assert (
        "canaryTrafficPercent"
        not in _engine_manifest("recs", values, chart_meta)["spec"]["predictor"]
    )


def test_isvc_spec_rejects_bad_inputs() -> None:
    """IsvcSpec refuses out-of-range canary percentages and replica bounds."""
    with pytest.raises(ValueError):
        IsvcSpec(model="recs", image="x:1", namespace="n", canary_traffic_percent=101)
    with pytest.raises(ValueError):
        IsvcSpec(model="recs", image="x:1", namespace="n", min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError):
        IsvcSpec(model="", image="x:1", namespace="n")


def test_payload_logger_reaches_the_sink(
    scenario_docs: dict[str, list[dict[str, Any]]],
    scenario_values: Callable[[str], dict[str, Any]],
) -> None:
    """With payloadSink enabled, every model logs to the sink Service the chart deploys."""
    values = scenario_values("production")
    assert values["payloadSink"]["enabled"], "the production scenario exercises the sink"
    docs = scenario_docs["production"]
    (service,) = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("payload-sink")
    ]
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("payload-sink")
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["monitor", "sink"]
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"
    for isvc in (d for d in docs if d["kind"] == "InferenceService"):
        assert isvc["spec"]["predictor"]["logger"] == {"mode": "all", "url": url}
    assert any(
        d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("payload-sink")
        for d in docs
    )
    # Off by default: no sink, no logger.
    default = scenario_docs["default"]
    assert not any(d["metadata"]["name"].endswith("payload-sink") for d in default)
    for isvc in (d for d in default if d["kind"] == "InferenceService"):
        assert "logger" not in isvc["spec"]["predictor"]
