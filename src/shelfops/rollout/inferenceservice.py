"""The one source of truth for the KServe InferenceService that serves a ShelfOps model.

:func:`build_inference_service` is the only writer of the InferenceService spec. The Helm chart
renders no InferenceService: it renders the builder's inputs (image repository, first image and
version, replicas, resources, env, Secret-backed env, service account, labels, tag routing,
payload logger, home claim, pull policy and secrets) as one JSON document per model in the
ConfigMap ``<release>-inference`` (``helm/shelfops/templates/inference-inputs.yaml``). The KServe
backend reads that ConfigMap and builds every object it creates, patches or replaces through
:func:`spec_from_inputs` and this builder, so a ``helm upgrade`` changes the inputs of the next
rollout step and never reverts a rollout in progress.

The Bento image is a KServe *custom container*: BentoML listens on :data:`CONTAINER_PORT`
(``BENTOML_PORT``), exposes the Open Inference Protocol health endpoints used as probes, and runs
as the Bento image's non-root user with a read-only root filesystem (writable ``emptyDir`` volumes
for ``/tmp`` and BentoML's Prometheus multiprocess directory).

Importing this module does no work and does not import ``kserve``; the SDK is loaded on first use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
        secret_env: Environment variables read from Secrets: name -> ``{"name": secret,
            "key": key}`` (e.g. the Redis password); added after ``env``.
        image_pull_policy: The container's ``imagePullPolicy``; ``None`` omits it.
        image_pull_secrets: Names of docker-registry Secrets for pulling the image.
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
    secret_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    image_pull_policy: str | None = None
    image_pull_secrets: Sequence[str] = ()

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
        for name, ref in self.secret_env.items():
            if set(ref) != {"name", "key"}:
                raise ValueError(f"secret_env[{name!r}] needs exactly 'name' and 'key'")


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
        V1EnvVarSource,
        V1HTTPGetAction,
        V1LocalObjectReference,
        V1ObjectMeta,
        V1PersistentVolumeClaimVolumeSource,
        V1Probe,
        V1ResourceRequirements,
        V1SeccompProfile,
        V1SecretKeySelector,
        V1SecurityContext,
        V1Volume,
        V1VolumeMount,
    )

    labels = standard_labels(spec)
    annotations = {TAG_ROUTING_ANNOTATION: "true"} if spec.tag_routing else {}
    container = V1Container(
        name=CONTAINER_NAME,
        image=spec.image,
        image_pull_policy=spec.image_pull_policy,
        ports=[V1ContainerPort(container_port=CONTAINER_PORT, name=PORT_NAME, protocol="TCP")],
        env=[V1EnvVar(name=k, value=v) for k, v in container_env(spec).items()]
        + [
            V1EnvVar(
                name=k,
                value_from=V1EnvVarSource(
                    secret_key_ref=V1SecretKeySelector(name=ref["name"], key=ref["key"])
                ),
            )
            for k, ref in spec.secret_env.items()
        ],
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
        image_pull_secrets=[V1LocalObjectReference(name=n) for n in spec.image_pull_secrets]
        or None,
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


INPUT_FIELDS: Final = frozenset(IsvcSpec.__dataclass_fields__) - {"canary_traffic_percent"}
"""Keys of one model's inputs document (the chart's ConfigMap), besides ``image_repository``."""


def spec_from_inputs(
    inputs: Mapping[str, Any],
    version: str | None = None,
    canary_traffic_percent: int | None = None,
    image: str | None = None,
) -> IsvcSpec:
    """The builder's inputs for one revision, from one model's document in the chart's ConfigMap.

    Args:
        inputs: The parsed ``<model>.json`` of the ConfigMap: :class:`IsvcSpec` fields (without
            ``canary_traffic_percent``) plus ``image_repository``; ``image`` and
            ``model_version`` there are the chart's first revision.
        version: The revision to build (an image tag); ``None`` builds the chart's first
            revision. The image is ``<image_repository>:<version>``, except for the chart's own
            version, which keeps the chart's image (it may be pinned by digest).
        canary_traffic_percent: Percent of traffic for this revision; ``None`` omits the field.
        image: An exact image that wins over the one derived from ``version`` (a rollback to
            the image that was stable).

    Returns:
        The :class:`IsvcSpec` to pass to :func:`build_inference_service`.

    Raises:
        ValueError: If the document has unknown or missing keys (a chart and an engine of
            different releases) or a value out of range.
    """
    fields = dict(inputs)
    repository = fields.pop("image_repository", None)
    unknown = set(fields) - INPUT_FIELDS
    missing = {"model", "image", "namespace", "model_version"} - set(fields)
    if not repository:
        missing.add("image_repository")
    if unknown or missing:
        raise ValueError(
            f"inference inputs of {fields.get('model', '?')!r} do not match this ShelfOps "
            f"(unknown keys {sorted(unknown)}, missing keys {sorted(missing)}); "
            "install the Helm chart and the CLI of the same release"
        )
    if version is not None and version != fields["model_version"]:
        fields["image"] = f"{repository}:{version}"
        fields["model_version"] = version
    if image:
        fields["image"] = image
    return IsvcSpec(**fields, canary_traffic_percent=canary_traffic_percent)


def inputs_from_configmap(data: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Parse the chart's inference-inputs ConfigMap data: model name -> inputs document.

    Args:
        data: The ConfigMap's ``data`` (keys ``<model>.json``).

    Returns:
        Model name -> parsed document (see :func:`spec_from_inputs`).

    Raises:
        ValueError: If a value is not a JSON object.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, text in data.items():
        if not key.endswith(".json"):
            continue
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError(f"{key} in the inference inputs is not a JSON object")
        out[key.removesuffix(".json")] = doc
    return out


def first_revisions(configmap: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The InferenceServices a fresh install's first ``shelfops rollout deploy`` creates.

    Used wherever the chart's output must be checked as the engine will apply it (``make
    validate-k8s``, ``tests/k8s``, the container suite): the chart's rendered inputs ConfigMap,
    through :func:`spec_from_inputs` and :func:`build_inference_service`, with no canary.

    Args:
        configmap: The rendered inference-inputs ConfigMap (a parsed manifest).

    Returns:
        One InferenceService manifest per model, sorted by model name.
    """
    inputs = inputs_from_configmap(configmap.get("data") or {})
    return [
        to_manifest(build_inference_service(spec_from_inputs(inputs[m]))) for m in sorted(inputs)
    ]
