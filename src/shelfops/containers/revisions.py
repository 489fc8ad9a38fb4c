"""Model revisions as containers of the Bento images, for the rollout engine's local backend.

The local backend runs each revision as a supervised process on a loopback port behind its
traffic splitter. :class:`ContainerRevisions` is a serve command for that backend: the process is
an attached ``docker run`` of exactly the InferenceService the KServe backend would send
(:func:`~shelfops.rollout.inferenceservice.build_inference_service`), turned into a container by
:mod:`shelfops.containers.pods`, with the revision's port published on 127.0.0.1. Stopping the
process stops and removes the container; a container that dies ends the process. So the same
engine, splitter, gate, drain and rollback code drives containers, and the model server runs with
the image, env, user, read-only root and volumes of the cluster manifest.

Versions are image tags: revision ``v`` of ``recs`` is the image ``shelfops-recs:v`` (what
``make images`` tags with the Bento version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shelfops.containers.pods import DOCKER, Cluster, docker
from shelfops.rollout.backends.base import BackendError
from shelfops.rollout.backends.local import LocalBackend
from shelfops.rollout.inferenceservice import (
    CONTAINER_PORT,
    IsvcSpec,
    build_inference_service,
    to_manifest,
)
from shelfops.settings import RolloutSettings, Settings


def container_name(prefix: str, model: str, version: str) -> str:
    """The engine's name for the container of one model revision."""
    return f"{prefix}-rev-{model}-{version}".replace(":", "-")


@dataclass(frozen=True)
class ContainerRevisions:
    """Serve command of the local backend that runs revisions as Bento image containers.

    Attributes:
        cluster: Network, volumes and secrets the revisions join (the stack's).
        image_repository: Image name of a model, ``{model}`` filled in.
        env: Extra environment of the model container (as the chart's ``models.<m>.env``).
        home_claim: The home volume's claim name, mounted read-only (Feast registry).
        secret_env: Variables read from Secrets (``{"name": secret, "key": key}``), resolved
            from the cluster's secrets like any ``secretKeyRef``.
        resources: Requests and limits of the model container (``None``: the engine's defaults).
    """

    cluster: Cluster
    image_repository: str = "shelfops-{model}"
    env: Mapping[str, str] = field(default_factory=dict)
    home_claim: str | None = None
    secret_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    resources: Mapping[str, Mapping[str, str]] | None = None

    def manifest(self, model: str, version: str) -> dict[str, object]:
        """The InferenceService the KServe backend would send for this revision."""
        extra = {"resources": self.resources} if self.resources else {}
        spec = IsvcSpec(
            model=model,
            image=f"{self.image_repository.format(model=model)}:{version}",
            namespace=self.cluster.namespace,
            model_version=version,
            env=dict(self.env),
            home_claim=self.home_claim,
            secret_env={k: dict(v) for k, v in self.secret_env.items()},
            **extra,  # type: ignore[arg-type]
        )
        return to_manifest(build_inference_service(spec))

    def __call__(
        self, settings: Settings, model: str, port: int, model_tag: str
    ) -> tuple[list[str], dict[str, str]]:
        """``(argv, env)`` of the attached ``docker run`` serving ``model_tag`` on ``port``."""
        version = model_tag.split(":", 1)[1]
        name = container_name(self.cluster.prefix, model, version)
        args, _ = self.cluster.run_args(
            self.manifest(model, version),
            name=name,
            detach=False,
            host_ports={CONTAINER_PORT: port},
        )
        # A container of the same name left by a crashed run would block the start; `exec` keeps
        # the pid, so the backend's SIGTERM reaches `docker run`, which passes it to the server.
        script = 'docker rm -f "$1" >/dev/null 2>&1; shift; exec "$@"'
        return ["sh", "-c", script, "sh", name, DOCKER, "run", *args], {}

    def resolve(self, settings: Settings, model: str, version: str) -> str:
        """A version is an image tag that the engine has (``latest`` is not reproducible).

        Raises:
            BackendError: If no such image exists.
        """
        image = f"{self.image_repository.format(model=model)}:{version}"
        if version in {"", "latest"} or docker("image", "inspect", image, check=False).returncode:
            raise BackendError(f"no image {image}; build it with `make images`")
        return version

    def remove_all(self) -> None:
        """Remove every revision container of this stack (after the backend stopped them)."""
        names = docker(
            "ps", "-aq", "--filter", f"name=^{self.cluster.prefix}-rev-", check=False
        ).stdout.split()
        if names:
            docker("rm", "-f", *names, check=False)


def container_backend(
    settings: Settings, config: RolloutSettings, revisions: ContainerRevisions
) -> LocalBackend:
    """The rollout engine's local backend with revisions as Bento image containers."""
    return LocalBackend(settings, config, serve_command=revisions, resolve=revisions.resolve)
