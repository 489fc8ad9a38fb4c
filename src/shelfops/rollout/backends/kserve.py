"""KServe backend: one InferenceService per model, canaryTrafficPercent for the split.

Every object is built by :func:`shelfops.rollout.inferenceservice.build_inference_service`, the
one writer of the spec, from the inputs the Helm chart renders into the ConfigMap
``<release>-inference`` (:attr:`RolloutSettings.inputs_configmap`, read on every write, so a
``helm upgrade`` of resources or env reaches the next step, and nothing but this backend writes
the InferenceService). Objects go through ``kserve.KServeClient`` (create, get, patch, replace).
KServe keeps the previous rolled-out revision and, with tag routing, gives the new one a
``latest-`` URL and the previous one a ``prev-`` URL: the gate loads both.

- canary: patch the new image with ``canaryTrafficPercent: 0``, wait for its revision to be
  ready, then patch 10, 50, 100;
- promote: replace the spec without ``canaryTrafficPercent`` (100% to the latest revision) and
  record the version in the ``shelfops.io/stable-version`` annotation;
- rollback: patch ``canaryTrafficPercent: 0`` (traffic back to the previous revision at once),
  then replace the spec with the previous version's.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from shelfops.rollout.backends.base import BackendError, Observation, Revision
from shelfops.rollout.inferenceservice import (
    MODEL_VERSION_LABEL,
    IsvcSpec,
    build_inference_service,
    inputs_from_configmap,
    spec_from_inputs,
)
from shelfops.settings import RolloutSettings, Settings

if TYPE_CHECKING:
    from kserve import KServeClient, V1beta1InferenceService

STABLE_VERSION_ANNOTATION = "shelfops.io/stable-version"
STABLE_IMAGE_ANNOTATION = "shelfops.io/stable-image"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class KServeBackend:
    """Canary rollouts on KServe through ``KServeClient``.

    Args:
        settings: ShelfOps settings.
        config: Rollout settings (namespace, image prefix, kubeconfig, context).
        client: A ready ``KServeClient`` (default: built from the kubeconfig on first use).
        poll_interval_s: How often readiness is polled.
    """

    name = "kserve"

    def __init__(
        self,
        settings: Settings,
        config: RolloutSettings,
        client: KServeClient | None = None,
        poll_interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.config = config
        self._client = client
        self.poll_interval_s = poll_interval_s

    @property
    def client(self) -> KServeClient:
        """The KServe client (kubeconfig from the rollout settings or ~/.kube/config)."""
        if self._client is None:
            from kserve import KServeClient

            try:
                self._client = KServeClient(
                    config_file=str(self.config.kubeconfig) if self.config.kubeconfig else None,
                    context=self.config.kube_context,
                )
            except Exception as exc:
                raise BackendError(
                    f"cannot load a kubeconfig ({exc}); set KUBECONFIG or "
                    "SHELFOPS_ROLLOUT_KUBECONFIG, or use --target local"
                ) from exc
        return self._client

    # -- helpers ------------------------------------------------------------------------------
    def _inputs(self, model: str) -> dict[str, Any]:
        """The chart's inputs for ``model`` from the inference-inputs ConfigMap."""
        name, ns = self.config.inputs_configmap, self.config.namespace
        try:
            configmap = self.client.core_api.read_namespaced_config_map(name, ns)
        except Exception as exc:
            status = getattr(exc, "status", None)
            hint = (
                "install the Helm chart in this namespace (it renders the InferenceService "
                "inputs), or set SHELFOPS_ROLLOUT_INPUTS_CONFIGMAP to '<release>-inference'"
                if status == 404
                else "check the kubeconfig and that it may read ConfigMaps in this namespace"
            )
            raise BackendError(f"cannot read ConfigMap {ns}/{name} ({exc}); {hint}") from exc
        try:
            inputs = inputs_from_configmap(configmap.data or {})
        except ValueError as exc:
            raise BackendError(f"ConfigMap {ns}/{name}: {exc}") from exc
        if model not in inputs:
            raise BackendError(
                f"ConfigMap {ns}/{name} has no inputs for {model!r} "
                f"(models: {', '.join(sorted(inputs)) or 'none'}); enable models.{model} in the "
                "chart values and `helm upgrade`"
            )
        return inputs[model]

    def _spec(
        self, model: str, version: str, canary: int | None = None, image: str | None = None
    ) -> IsvcSpec:
        """The builder's inputs for one revision, from the chart's current inputs."""
        try:
            return spec_from_inputs(self._inputs(model), version, canary, image)
        except ValueError as exc:
            raise BackendError(f"inputs of {model}: {exc}") from exc

    def image(self, model: str, version: str) -> str:
        """The Bento image of a model version (the chart's image repository, tag = version)."""
        return self._spec(model, version).image

    def _get(self, model: str) -> dict[str, Any] | None:
        client = self.client
        try:
            obj: dict[str, Any] = client.get(model, namespace=self.config.namespace)
        except RuntimeError as exc:
            if "(404)" in str(exc) or "Not Found" in str(exc):
                return None
            raise BackendError(f"cannot read InferenceService {model}: {exc}") from exc
        return obj

    def _build(
        self,
        model: str,
        version: str,
        canary: int | None,
        annotations: dict[str, str],
        image: str | None = None,
    ) -> V1beta1InferenceService:
        """The InferenceService for ``version`` from the chart's current inputs."""
        isvc = build_inference_service(self._spec(model, version, canary, image))
        isvc.metadata.annotations = {**(isvc.metadata.annotations or {}), **annotations}
        return isvc

    @staticmethod
    def _version_of(obj: dict[str, Any]) -> str | None:
        labels: dict[str, str] = obj["metadata"].get("labels", {})
        return labels.get(MODEL_VERSION_LABEL)

    @staticmethod
    def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
        if not obj:
            return {}
        return {
            k: v
            for k, v in (obj["metadata"].get("annotations") or {}).items()
            if k in (STABLE_VERSION_ANNOTATION, STABLE_IMAGE_ANNOTATION)
        }

    def _write(self, verb: str, model: str, isvc: V1beta1InferenceService) -> None:
        """``patch`` (merge patch) or ``replace`` (PUT) the InferenceService."""
        call = self.client.patch if verb == "patch" else self.client.replace
        try:
            call(model, isvc, namespace=self.config.namespace)
        except RuntimeError as exc:
            raise BackendError(f"cannot {verb} InferenceService {model}: {exc}") from exc

    # -- interface ----------------------------------------------------------------------------
    def resolve_version(self, model: str, version: str) -> str:
        """Image tags are used as given (``latest`` is refused: it is not reproducible)."""
        if version in {"", "latest"} or not VERSION_PATTERN.match(version):
            raise BackendError(
                f"{version!r} is not an image tag; pass the tag CD pushed "
                "(e.g. 20261122-abcdef123456)"
            )
        return version

    def observe(self, model: str) -> Observation:
        """Versions, canary share and tagged URLs from the InferenceService status."""
        obj = self._get(model)
        if obj is None:
            return Observation(model=model)
        annotations = obj["metadata"].get("annotations") or {}
        spec_version = self._version_of(obj)
        stable = annotations.get(STABLE_VERSION_ANNOTATION)
        percent = obj["spec"]["predictor"].get("canaryTrafficPercent")
        status = obj.get("status") or {}
        predictor = (status.get("components") or {}).get("predictor") or {}
        traffic = predictor.get("traffic") or []
        by_tag = {t.get("tag"): t for t in traffic if t.get("tag")}
        latest_ready = predictor.get("latestReadyRevision") == predictor.get(
            "latestCreatedRevision"
        ) and bool(predictor.get("latestCreatedRevision"))
        canary = spec_version if percent is not None and spec_version != stable else None
        revisions = []
        if canary:
            revisions.append(
                Revision(
                    canary,
                    (by_tag.get("latest") or {}).get("url"),
                    latest_ready,
                    int(percent or 0),
                )
            )
            if stable:
                revisions.append(
                    Revision(
                        stable,
                        (by_tag.get("prev") or {}).get("url"),
                        True,
                        100 - int(percent or 0),
                    )
                )
        elif spec_version:
            url = (
                (by_tag.get("latest") or {}).get("url") or predictor.get("url") or status.get("url")
            )
            revisions.append(Revision(spec_version, url, latest_ready, 100))
        return Observation(
            model=model,
            endpoint=status.get("url"),
            stable_version=stable if stable else (spec_version if not canary else None),
            canary_version=canary,
            canary_percent=int(percent or 0) if canary else 0,
            revisions=tuple(revisions),
        )

    def start_canary(self, model: str, version: str, stable: str | None) -> None:
        """Create the InferenceService, or patch the new image in with 0% canary traffic."""
        current = self._get(model)
        if current is None:
            isvc = self._build(model, version, None, {})
            try:
                self.client.create(isvc, namespace=self.config.namespace)
            except RuntimeError as exc:
                raise BackendError(f"cannot create InferenceService {model}: {exc}") from exc
            return
        if self._version_of(current) == version:
            return  # already applied (resumed after a crash)
        (container,) = current["spec"]["predictor"]["containers"]
        annotations = {
            STABLE_VERSION_ANNOTATION: stable or self._version_of(current) or "",
            STABLE_IMAGE_ANNOTATION: container["image"],
        }
        self._write("patch", model, self._build(model, version, 0, annotations))

    def wait_ready(self, model: str, version: str, timeout_s: float) -> bool:
        """Poll until the latest revision serves ``version`` and is ready."""
        deadline = time.monotonic() + timeout_s
        while True:
            obj = self._get(model)
            if obj is not None and self._version_of(obj) == version:
                status = obj.get("status") or {}
                predictor = (status.get("components") or {}).get("predictor") or {}
                created = predictor.get("latestCreatedRevision")
                fresh = status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
                if fresh and created and predictor.get("latestReadyRevision") == created:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval_s)

    def set_traffic(self, model: str, stable: str | None, canary: str, percent: int) -> None:
        """Patch ``canaryTrafficPercent``."""
        current = self._get(model)
        if current is None:
            raise BackendError(f"InferenceService {model} is gone; deploy it again")
        self._write("patch", model, self._build(model, canary, percent, self._annotations(current)))

    def promote(self, model: str, version: str, previous: str | None) -> None:
        """Replace the spec without a canary percentage: the latest revision takes 100%."""
        current = self._get(model)
        if current is None:
            raise BackendError(f"InferenceService {model} is gone; deploy it again")
        annotations = {
            STABLE_VERSION_ANNOTATION: version,
            STABLE_IMAGE_ANNOTATION: self.image(model, version),
        }
        self._write("replace", model, self._build(model, version, None, annotations))

    def rollback(self, model: str, to_version: str, drop: str | None) -> None:
        """Canary to 0% at once, then restore the previous version's spec."""
        current = self._get(model)
        if current is None:
            return
        if not to_version:
            try:  # a first deployment that failed: nothing to return to
                self.client.delete(model, namespace=self.config.namespace)
            except RuntimeError as exc:
                raise BackendError(f"cannot delete InferenceService {model}: {exc}") from exc
            return
        annotations = self._annotations(current)
        if current["spec"]["predictor"].get("canaryTrafficPercent") not in (None, 0):
            spec_version = self._version_of(current) or to_version
            self._write("patch", model, self._build(model, spec_version, 0, annotations))
        image = (
            annotations.get(STABLE_IMAGE_ANNOTATION)
            if annotations.get(STABLE_VERSION_ANNOTATION) == to_version
            else None
        )
        restored = {
            STABLE_VERSION_ANNOTATION: to_version,
            STABLE_IMAGE_ANNOTATION: image or self.image(model, to_version),
        }
        self._write("replace", model, self._build(model, to_version, None, restored, image=image))
