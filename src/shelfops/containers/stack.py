"""A cluster-profile ShelfOps stack on one machine: ``make cluster-up`` and ``make cluster-down``.

The stack is the Helm release (``helm template`` with the local images, see
:mod:`shelfops.containers.release`) run by :mod:`shelfops.containers.pods` on one engine network:

- the bundled Redis Deployment as the online store, its password in the ``shelfops-redis`` Secret
  the chart references (``redis.auth.existingSecret``), kept in a mode-600 file of the stack;
- one engine volume as the chart's home claim (``shelfops-home``, owned by the pods' fsGroup),
  where the cluster profile keeps the Feast registry (``SHELFOPS_FEAST_REGISTRY``);
- the stable recs and demand model servers: the rollout engine's local backend with revisions as
  containers of the Bento images (:mod:`shelfops.containers.revisions`), each behind its splitter
  on a 127.0.0.1 port recorded in the stack file.

Every container, volume and the network carry the label ``io.shelfops.stack=<name>``;
:func:`down` removes exactly those (and the engine's splitter processes), nothing else.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelfops.containers.pods import Cluster, Pod, docker, pod_template
from shelfops.containers.release import NAMESPACE, RELEASE, TAG, render
from shelfops.containers.revisions import ContainerRevisions, container_backend
from shelfops.settings import RolloutSettings, Settings

LABEL = "io.shelfops.stack"
"""Engine label on everything a stack creates (its value: the stack name)."""
MODELS = ("recs", "demand")
REDIS_SECRET = ("shelfops-redis", "redis-password")
"""The Secret (name, key) the chart reads the Redis password from when auth is on."""
HOME_CLAIM = f"{RELEASE}-home"
HOME_UID = 10001


@dataclass(frozen=True)
class StackPaths:
    """Where a stack's inputs and host-side state live.

    Attributes:
        root: The checkout (chart, compiled pipeline, ``.build``).
        name: Stack name: prefix of every container, volume and network, and the label value.
    """

    root: Path
    name: str = "shelfops-stack"

    @property
    def helm(self) -> Path:
        """The helm binary ``make validate-k8s`` installs."""
        return self.root / ".tools" / "bin" / "helm"

    @property
    def chart(self) -> Path:
        """The Helm chart."""
        return self.root / "helm" / "shelfops"

    @property
    def compiled(self) -> Path:
        """The compiled training pipeline."""
        return self.root / "pipelines" / "compiled" / "training_pipeline.yaml"

    @property
    def images_report(self) -> Path:
        """What ``make images`` built (Bento versions, generator settings)."""
        return self.root / ".build" / "images.json"

    @property
    def state(self) -> Path:
        """Host-side state: the stack file, the Redis password, the rollout engine's home."""
        return self.root / ".build" / "cluster" / self.name

    @property
    def stack_file(self) -> Path:
        """JSON record of what ``up`` started (ports, versions)."""
        return self.state / "stack.json"

    @property
    def password_file(self) -> Path:
        """The Redis password (mode 600), the Secret's content."""
        return self.state / "redis-password"


def images_report(paths: StackPaths) -> dict[str, Any]:
    """``.build/images.json``; raises with what to run when ``make images`` has not run."""
    if not paths.images_report.is_file():
        raise RuntimeError(f"{paths.images_report} is missing: run `make images`")
    data: dict[str, Any] = json.loads(paths.images_report.read_text())
    return data


def open_cluster(paths: StackPaths, create: bool) -> Cluster:
    """The rendered release (Redis auth on) on the stack's network, with the stack's Secret.

    Args:
        paths: The stack.
        create: Create the network (``up``); otherwise join the existing one.
    """
    if create:
        paths.state.mkdir(parents=True, exist_ok=True)
        if not paths.password_file.is_file():
            paths.password_file.write_text(secrets.token_urlsafe(24))
            paths.password_file.chmod(0o600)
    elif not paths.stack_file.is_file():
        raise RuntimeError(f"no stack {paths.name} is up: run `make cluster-up`")
    docs = render(paths.helm, paths.chart, sets=(f"redis.auth.existingSecret={REDIS_SECRET[0]}",))
    return Cluster(
        prefix=paths.name,
        namespace=NAMESPACE,
        docs=docs,
        secrets={REDIS_SECRET: paths.password_file.read_text().strip()},
        network="" if create else f"{paths.name}-net",
        labels={LABEL: paths.name},
        workdir=paths.state / "pods",
    )


def model_env(cluster: Cluster) -> dict[str, str]:
    """Environment of the model containers: the cluster settings the chart's ConfigMap holds.

    The Redis password is not here: it reaches them as a Secret reference (:func:`revisions_of`).
    """
    data = dict(cluster.find("ConfigMap", f"{RELEASE}-env")["data"])
    data.pop("SHELFOPS_REDIS_PASSWORD_FILE", None)
    return {
        **data,
        "SHELFOPS_HOME": "/var/lib/shelfops",
        "BENTOML_HOME": "/tmp/bentoml",
        "SHELFOPS_MONITOR_SAMPLE_RATE": "0",
    }


def revisions_of(cluster: Cluster) -> ContainerRevisions:
    """The rollout engine's container revisions on the stack (read-only home, model env)."""
    secret = {"name": REDIS_SECRET[0], "key": REDIS_SECRET[1]}
    return ContainerRevisions(
        cluster,
        env=model_env(cluster),
        home_claim=HOME_CLAIM,
        secret_env={"SHELFOPS_REDIS_PASSWORD": secret},
    )


def rollout_config(record: dict[str, Any], **overrides: Any) -> RolloutSettings:
    """Rollout settings of the stack's engine: its splitter ports, short gates.

    The latency limits are loosened for a shared 2-core machine where two model containers, the
    Locust gate and the splitter compete (measured: a healthy demand server's gate p99 reached
    4.1 s at load 7); a slow image (3 s injected) still fails them by a wide margin.
    """
    defaults: dict[str, Any] = {
        "steps": [50, 100],
        "gate_users": 2,
        "gate_duration_s": 8,
        "max_p95_ms": 2000.0,
        "max_p99_ms": 6000.0,
        "p95_factor": 1.5,
        "p95_slack_ms": 200.0,
        "keep_previous": False,
        "ready_timeout_s": 600,
        "recs_port": record["ports"]["recs"],
        "demand_port": record["ports"]["demand"],
    }
    return RolloutSettings(**{**defaults, **overrides})


def engine_settings(paths: StackPaths) -> Settings:
    """Settings of the host-side rollout engine (its state and gate reports in the stack dir)."""
    return Settings(home=paths.state / "engine")


def redis_pod(cluster: Cluster) -> Pod:
    """Handle on the stack's running Redis container."""
    doc = cluster.find("Deployment", f"{RELEASE}-redis")
    (container,) = pod_template(doc)[1]["containers"]
    return Pod(f"{cluster.prefix}-{RELEASE}-redis", container)


Say = Callable[[str], None]


def up(paths: StackPaths, say: Say) -> dict[str, Any]:
    """Start the stack (idempotent for a stack that is fully up); returns the stack record.

    Raises:
        RuntimeError: an image is missing, or a workload did not start (with its logs).
    """
    from shelfops.rollout.factory import build_engine
    from shelfops.rollout.processes import free_port

    if paths.stack_file.is_file():
        raise RuntimeError(f"stack {paths.name} is already up: `make cluster-down` first")
    report = images_report(paths)
    for image in ("shelfops-base:bookworm", f"shelfops:{TAG}", f"shelfops-redis:{TAG}"):
        if docker("image", "inspect", image, check=False).returncode:
            raise RuntimeError(f"image {image} is missing: run `make images`")
    cluster = open_cluster(paths, create=True)
    say(f"network {cluster.network}")
    volume = cluster.volume(HOME_CLAIM, HOME_UID)
    say(f"home volume {volume} (the {HOME_CLAIM} claim, owned by uid {HOME_UID})")
    registry = cluster.find("ConfigMap", f"{RELEASE}-env")["data"]["SHELFOPS_FEAST_REGISTRY"]
    redis = cluster.start(cluster.find("Deployment", f"{RELEASE}-redis"))
    redis.wait_ready(60)
    say(f"redis ready on {RELEASE}-redis:6379 (127.0.0.1:{redis.port('redis')}), password auth")
    record: dict[str, Any] = {
        "name": paths.name,
        "network": cluster.network,
        "volume": volume,
        "ports": {"recs": free_port(), "demand": free_port()},
        "stable": dict(report["bento_versions"]),
    }
    paths.stack_file.write_text(json.dumps(record, indent=2))
    # The registry cannot be applied before there is clean data: the pipeline's build-features
    # step applies it where the cluster profile keeps it; the model servers open it on first use
    # and again after a failure, so they need no restart once it exists.
    say(f"Feast registry path {registry} on the home volume (build-features applies it)")
    revisions = revisions_of(cluster)
    config = rollout_config(record)
    backend = container_backend(engine_settings(paths), config, revisions)
    engine = build_engine(engine_settings(paths), "local", config, backend=backend)
    for model in MODELS:
        version = record["stable"][model]
        result = engine.deploy(model, version)
        if result.outcome not in {"promoted", "noop"}:
            raise RuntimeError(f"stable {model} {version} did not start: {result.reason}")
        say(f"stable {model} {version} serving on 127.0.0.1:{record['ports'][model]}")
    return record


def down(paths: StackPaths, say: Say) -> list[str]:
    """Remove exactly what :func:`up` (and ``e2e``) created: labelled objects, splitters, state.

    Returns:
        What was removed.
    """
    from shelfops.rollout.backends.local import LocalBackend

    removed: list[str] = []
    if paths.stack_file.is_file():
        record = json.loads(paths.stack_file.read_text())
        backend = LocalBackend(engine_settings(paths), rollout_config(record))
        for model in MODELS:
            removed += [f"{model} {what}" for what in backend.stop(model)]
    selector = f"label={LABEL}={paths.name}"
    containers = docker("ps", "-aq", "--filter", selector).stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers)
        removed.append(f"{len(containers)} containers")
    volumes = docker("volume", "ls", "-q", "--filter", selector).stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes)
        removed += [f"volume {v}" for v in volumes]
    networks = docker("network", "ls", "-q", "--filter", selector).stdout.split()
    if networks:
        docker("network", "rm", *networks)
        removed.append(f"network {paths.name}-net")
    images = docker("images", "-q", "--filter", selector).stdout.split()
    if images:
        docker("rmi", "-f", *sorted(set(images)), check=False)
        removed.append(f"{len(set(images))} broken test images")
    if paths.state.is_dir():
        shutil.rmtree(paths.state)
        removed.append(f"state {paths.state}")
    for line in removed:
        say(line)
    return removed
