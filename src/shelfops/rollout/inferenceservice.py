"""The one source of truth for the KServe InferenceService that serves a ShelfOps model.

The rollout engine sends exactly what :func:`build_inference_service` returns, and the Helm
chart (``helm/shelfops/templates/inferenceservice.yaml``) renders the same shape; the tests in
``tests/k8s`` prove the two agree on image, port, probes, labels, annotations, security context
and canary percentage. Change both together.

The Bento image is a KServe *custom container*: BentoML listens on :data:`CONTAINER_PORT`
(``BENTOML_PORT``), exposes the Open Inference Protocol health endpoints used as probes, and runs
as the Bento image's non-root user with a read-only root filesystem (writable ``emptyDir`` volumes
for ``/tmp`` and BentoML's Prometheus multiprocess directory).

Importing this module does no work and does not import ``kserve``; the SDK is loaded on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from kserve import V1beta1InferenceService

API_VERSION: Final = "serving.kserve.io/v1beta1"
KIND: Final = "InferenceService"
CONTAINER_NAME: Final = "kserve-container"
CONTAINER_PORT: Final = 8080
PORT_NAME: Final = "http1"  # Knative accepts only "http1" or "h2c" as the serving port name.
READINESS_PATH: Final = "/v2/health/ready"
LIVENESS_PATH: Final = "/v2/health/live"
TAG_ROUTING_ANNOTATION: Final = "serving.kserve.io/enable-tag-routing"
MODEL_LABEL: Final = "shelfops.io/model"
MODEL_VERSION_LABEL: Final = "shelfops.io/model-version"
BENTO_UID: Final = 1034  # the uid/gid of the "bentoml" user in images built by BentoML
BENTO_HOME: Final = "/home/bentoml"
WRITABLE_DIRS: Final[Mapping[str, str]] = {
    "tmp": "/tmp",  # an emptyDir volume, not the host's /tmp
    "bento-metrics": f"{BENTO_HOME}/prometheus_multiproc_dir",
}
"""emptyDir volume name -> mount path; everything else in the container is read-only."""
HOME_VOLUME: Final = "shelfops-home"
HOME_MOUNT_PATH: Final = "/var/lib/shelfops"
"""The ShelfOps home volume (Feast registry file, offline features), mounted read-only."""

READINESS_PROBE: Final[Mapping[str, int]] = {
    "initialDelaySeconds": 5,
    "periodSeconds": 10,
    "timeoutSeconds": 2,
    "failureThreshold": 3,
}
LIVENESS_PROBE: Final[Mapping[str, int]] = {
    "initialDelaySeconds": 30,
    "periodSeconds": 15,
    "timeoutSeconds": 2,
    "failureThreshold": 4,
}

LOGGER_MODES: Final[tuple[str, ...]] = ("all", "request", "response")
"""What KServe's payload logger sends to the sink (``spec.predictor.logger.mode``)."""

DEFAULT_RESOURCES: Final[Mapping[str, Mapping[str, str]]] = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


def _default_resources() -> Mapping[str, Mapping[str, str]]:
    return {kind: dict(values) for kind, values in DEFAULT_RESOURCES.items()}


@dataclass(frozen=True)
class IsvcSpec:
    """Everything that varies between InferenceServices for ShelfOps models.

    Attributes:
        model: Model name (``recs`` or ``demand``); also the InferenceService name.
        image: Bento image reference, ``repository:tag`` or ``repository@sha256:...``.
        namespace: Namespace of the InferenceService.
        model_version: Version label of the model revision (e.g. the Bento tag's version).
        canary_traffic_percent: Percent of traffic for the newest revision; ``None`` omits the
            field (KServe then sends 100% to the latest ready revision).
        min_replicas: Minimum predictor replicas (0 allows scale to zero in Knative mode).
        max_replicas: Maximum predictor replicas.
        resources: Kubernetes ``requests``/``limits`` for the model container.
        service_account: ServiceAccount the predictor pods run as.
        labels: Extra labels for the InferenceService and its pods (e.g. Helm's instance labels).
        env: Extra environment variables for the model container (no secrets here: use
            Secret references in the chart instead).
        tag_routing: Whether KServe creates ``latest-``/``prev-`` tagged URLs for the gate.
        logger_url: URL of the payload-logger sink (``shelfops monitor sink``); ``None`` omits
            ``spec.predictor.logger``.
        logger_mode: What the payload logger sends: ``all``, ``request`` or ``response``.
        home_claim: PersistentVolumeClaim of the ShelfOps home (the Helm chart's home volume),
            mounted read-only at :data:`HOME_MOUNT_PATH` so the server finds the Feast registry
            and offline features where ``SHELFOPS_HOME`` says; ``None`` mounts nothing (an
            object-store registry).
    """

    model: str
    image: str
    namespace: str
    model_version: str = ""
    canary_traffic_percent: int | None = None
    min_replicas: int = 1
    max_replicas: int = 3
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=_default_resources)
    service_account: str = "shelfops-inference"
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    tag_routing: bool = True
    logger_url: str | None = None
    logger_mode: str = "all"
    home_claim: str | None = None

    def __post_init__(self) -> None:
        """Reject values the API server or KServe would refuse later.

        Raises:
            ValueError: If a field is out of range.
        """
        if not self.model or not self.image:
            raise ValueError("model and image are required")
        if self.canary_traffic_percent is not None and not 0 <= self.canary_traffic_percent <= 100:
            raise ValueError("canary_traffic_percent must be between 0 and 100")
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise ValueError("need 0 <= min_replicas <= max_replicas and max_replicas >= 1")
        if self.logger_mode not in LOGGER_MODES:
            raise ValueError(f"logger_mode must be one of {LOGGER_MODES}")


def standard_labels(spec: IsvcSpec) -> dict[str, str]:
    """Labels on the InferenceService and its pods: ShelfOps' own, then ``spec.labels``.

    Args:
        spec: The InferenceService inputs.

    Returns:
        The label mapping (NetworkPolicies and the metrics Service select on these).
    """
    labels = {
        "app.kubernetes.io/name": "shelfops",
        "app.kubernetes.io/part-of": "shelfops",
        "app.kubernetes.io/component": "inference",
        MODEL_LABEL: spec.model,
    }
    if spec.model_version:
        labels[MODEL_VERSION_LABEL] = spec.model_version
    labels.update(spec.labels)
    return labels


def container_env(spec: IsvcSpec) -> dict[str, str]:
    """Environment of the model container: the standard settings, then ``spec.env``.

    Args:
        spec: The InferenceService inputs.

    Returns:
        Variable name -> value.
    """
    env = {
        "BENTOML_PORT": str(CONTAINER_PORT),
        # The root filesystem is read-only: BentoML's home (it creates folders at start) goes on
        # the /tmp emptyDir; the served model stays inside the image's Bento.
        "BENTOML_HOME": f"{WRITABLE_DIRS['tmp']}/bentoml",
        "SHELFOPS_PROFILE": "cluster",
        # The home is mounted read-only: in a cluster the prediction log is the payload sink's
        # (KServe's logger), so the server's own logger writes nothing (it would fail every flush).
        "SHELFOPS_MONITOR_SAMPLE_RATE": "0",
    }
    if spec.home_claim:
        env["SHELFOPS_HOME"] = HOME_MOUNT_PATH
    env.update(spec.env)
    return env


def build_inference_service(spec: IsvcSpec) -> V1beta1InferenceService:
    """Build the InferenceService for one model revision.

    Args:
        spec: The InferenceService inputs.

    Returns:
        A ``kserve.V1beta1InferenceService``; serialise it with :func:`to_manifest`.
    """
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1LoggerSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import (
        V1Capabilities,
        V1Container,
        V1ContainerPort,
        V1EmptyDirVolumeSource,
        V1EnvVar,
        V1HTTPGetAction,
        V1ObjectMeta,
        V1PersistentVolumeClaimVolumeSource,
        V1Probe,
        V1ResourceRequirements,
        V1SeccompProfile,
        V1SecurityContext,
        V1Volume,
        V1VolumeMount,
    )

    labels = standard_labels(spec)
    annotations = {TAG_ROUTING_ANNOTATION: "true"} if spec.tag_routing else {}
    container = V1Container(
        name=CONTAINER_NAME,
        image=spec.image,
        ports=[V1ContainerPort(container_port=CONTAINER_PORT, name=PORT_NAME, protocol="TCP")],
        env=[V1EnvVar(name=k, value=v) for k, v in container_env(spec).items()],
        readiness_probe=V1Probe(
            http_get=V1HTTPGetAction(path=READINESS_PATH, port=CONTAINER_PORT),
            initial_delay_seconds=READINESS_PROBE["initialDelaySeconds"],
            period_seconds=READINESS_PROBE["periodSeconds"],
            timeout_seconds=READINESS_PROBE["timeoutSeconds"],
            failure_threshold=READINESS_PROBE["failureThreshold"],
        ),
        liveness_probe=V1Probe(
            http_get=V1HTTPGetAction(path=LIVENESS_PATH, port=CONTAINER_PORT),
            initial_delay_seconds=LIVENESS_PROBE["initialDelaySeconds"],
            period_seconds=LIVENESS_PROBE["periodSeconds"],
            timeout_seconds=LIVENESS_PROBE["timeoutSeconds"],
            failure_threshold=LIVENESS_PROBE["failureThreshold"],
        ),
        resources=V1ResourceRequirements(
            requests=dict(spec.resources.get("requests", {})),
            limits=dict(spec.resources.get("limits", {})),
        ),
        security_context=V1SecurityContext(
            run_as_non_root=True,
            run_as_user=BENTO_UID,
            run_as_group=BENTO_UID,
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            capabilities=V1Capabilities(drop=["ALL"]),
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[V1VolumeMount(name=n, mount_path=p) for n, p in WRITABLE_DIRS.items()]
        + (
            [V1VolumeMount(name=HOME_VOLUME, mount_path=HOME_MOUNT_PATH, read_only=True)]
            if spec.home_claim
            else []
        ),
    )
    volumes = [V1Volume(name=n, empty_dir=V1EmptyDirVolumeSource()) for n in WRITABLE_DIRS]
    if spec.home_claim:
        volumes.append(
            V1Volume(
                name=HOME_VOLUME,
                persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(
                    claim_name=spec.home_claim, read_only=True
                ),
            )
        )
    predictor = V1beta1PredictorSpec(
        containers=[container],
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        canary_traffic_percent=spec.canary_traffic_percent,
        service_account_name=spec.service_account,
        automount_service_account_token=False,
        labels=dict(labels),
        volumes=volumes,
        logger=V1beta1LoggerSpec(mode=spec.logger_mode, url=spec.logger_url)
        if spec.logger_url
        else None,
    )
    return V1beta1InferenceService(
        api_version=API_VERSION,
        kind=KIND,
        metadata=V1ObjectMeta(
            name=spec.model,
            namespace=spec.namespace,
            labels=labels,
            annotations=annotations or None,
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def to_manifest(isvc: V1beta1InferenceService) -> dict[str, Any]:
    """Serialise an InferenceService to the camelCase manifest the API server expects.

    Args:
        isvc: The object from :func:`build_inference_service`.

    Returns:
        A JSON-ready dict (``None`` fields dropped), suitable for ``kubectl apply`` or
        ``KServeClient.create``.
    """
    from kserve import ApiClient

    manifest: dict[str, Any] = ApiClient().sanitize_for_serialization(isvc)
    return manifest
