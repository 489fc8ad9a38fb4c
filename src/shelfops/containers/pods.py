"""Run a rendered Kubernetes pod spec as a real container, the way the kubelet would.

Everything comes from the rendered YAML (``helm template`` or the rollout engine's manifest):
image, command and args (command replaces the image entrypoint, args its CMD), env (plain values
and ``secretKeyRef``), container ports (published on 127.0.0.1), the user and group, fsGroup,
read-only root filesystem, dropped and added capabilities, no privilege escalation, memory and
CPU limits, and volumes (``emptyDir`` as tmpfs, ``configMap`` as read-only files rendered from
the ConfigMap in the same release, ``persistentVolumeClaim`` as a named engine volume that every
workload of the test shares, like one PVC). Services become network aliases, so the in-cluster
names the chart renders (``shelfops-redis``, ``<svc>.<ns>.svc``) resolve. Probes are polled from
the host through the published ports. Nothing here knows about a particular workload.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DOCKER = "/usr/bin/docker"
Doc = dict[str, Any]

_MEMORY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}


def docker(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the Debian docker client (BuildKit through the daemon), capturing output."""
    done = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {done.stderr.strip()[-800:]}")
    return done


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``384mb``) in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", str(quantity))
    if not match:
        raise ValueError(f"unsupported memory quantity {quantity!r}")
    return int(float(match.group(1)) * _MEMORY.get(match.group(2) or "", 1))


def cpus(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity (``250m``, ``1``) in CPUs."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def pod_template(doc: Doc) -> tuple[Doc, Doc]:
    """``(pod metadata, pod spec)`` of a Deployment, CronJob, Job, Pod or InferenceService."""
    kind = doc["kind"]
    if kind == "Deployment" or kind == "Job":
        tpl = doc["spec"]["template"]
        return tpl.get("metadata", {}), tpl["spec"]
    if kind == "CronJob":
        tpl = doc["spec"]["jobTemplate"]["spec"]["template"]
        return tpl.get("metadata", {}), tpl["spec"]
    if kind == "Pod":
        return doc.get("metadata", {}), doc["spec"]
    if kind == "InferenceService":
        predictor = doc["spec"]["predictor"]
        return {"labels": predictor.get("labels", {})}, predictor
    raise ValueError(f"no pod template in a {kind}")


@dataclass
class Cluster:
    """What the workloads of one test share: a network, volumes, rendered objects, secrets."""

    prefix: str
    namespace: str
    docs: list[Doc]
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    network: str = ""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shelfops-pods-")))
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    owns_network: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    """Engine labels on every container, volume and network created here (``make cluster-down``
    removes a stack by its label)."""

    def label_args(self) -> list[str]:
        """``--label k=v`` for each of :attr:`labels`."""
        return [arg for k, v in self.labels.items() for arg in ("--label", f"{k}={v}")]

    def __post_init__(self) -> None:
        """Create the network (container names and aliases resolve on it), unless one is given.

        A given network (and the volumes on it) belongs to whoever created it: :meth:`close`
        leaves it alone.
        """
        if self.network:
            self.owns_network = False
            return
        self.network = f"{self.prefix}-net"
        docker("network", "create", *self.label_args(), self.network)

    def find(self, kind: str, name: str) -> Doc:
        """The rendered object of a kind and name."""
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"no {kind} {name} in the rendered release")

    def services_for(self, labels: dict[str, str]) -> list[str]:
        """Names of the Services whose selector matches pod labels."""
        return [
            d["metadata"]["name"]
            for d in self.docs
            if d["kind"] == "Service"
            and d["spec"].get("selector")
            and d["spec"].get("clusterIP") != "None"
            and all(labels.get(k) == v for k, v in d["spec"]["selector"].items())
        ]

    def volume(self, claim: str, fs_group: int | None) -> str:
        """The engine volume standing in for a PVC, owned by fsGroup like the kubelet does."""
        name = f"{self.prefix}-{claim}"
        if name not in self.volumes and self.owns_network:
            docker("volume", "create", *self.label_args(), name)
            self.volumes.append(name)
            if fs_group is not None:
                owner = f"chown {fs_group}:{fs_group} /v && chmod 2775 /v"
                docker(
                    "run", "--rm", "-v", f"{name}:/v", "--entrypoint", "sh",
                    "shelfops-base:bookworm", "-c", owner,
                )  # fmt: skip
        return name

    def _config_dir(self, config_map: str) -> Path:
        data = self.find("ConfigMap", config_map).get("data", {})
        out = self.workdir / "configmaps" / config_map
        out.mkdir(parents=True, exist_ok=True)
        for key, value in data.items():
            (out / key).write_text(value)
            (out / key).chmod(0o644)
        out.chmod(0o755)
        return out

    def run_args(
        self,
        doc: Doc,
        container_name: str | None = None,
        name: str | None = None,
        detach: bool = True,
        host_ports: dict[int, int] | None = None,
    ) -> tuple[list[str], Doc]:
        """The ``docker run`` arguments for one container of a rendered workload.

        Args:
            doc: The rendered object (Deployment, CronJob, InferenceService, ...).
            container_name: Which container (default: the only one).
            name: Container name (default: ``<prefix>-<object name>``).
            detach: Run in the background with the pod's restart policy (the kubelet's job);
                ``False`` runs attached and removes the container when it ends, so the
                ``docker run`` process lives exactly as long as the container (a supervisor
                that stops the process stops the container).
            host_ports: Container port -> fixed 127.0.0.1 port (default: any free port).

        Returns:
            ``(argv after "docker run", the container spec)``.
        """
        meta, pod = pod_template(doc)
        containers = pod["containers"]
        (container,) = (
            [c for c in containers if c["name"] == container_name] if container_name else containers
        )
        pod_sc = pod.get("securityContext", {})
        sc = {**pod_sc, **container.get("securityContext", {})}
        name = name or f"{self.prefix}-{doc['metadata']['name']}"
        args = ["--name", name, "--network", self.network, *self.label_args()]
        if not detach:
            args.append("--rm")
        # The kubelet restarts containers of Always pods (Deployments, predictors); Jobs say Never.
        elif pod.get("restartPolicy", "Always") == "Always":
            args += ["--detach", "--restart", "always"]
        elif pod["restartPolicy"] == "OnFailure":
            args += ["--detach", "--restart", "on-failure"]
        else:
            args.append("--detach")
        for alias in [doc["metadata"]["name"], *self.services_for(meta.get("labels", {}))]:
            for suffix in ("", f".{self.namespace}.svc", f".{self.namespace}.svc.cluster.local"):
                args += ["--network-alias", alias + suffix]
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        if sc.get("runAsNonRoot") and not uid:
            raise AssertionError(f"{name}: runAsNonRoot without a numeric runAsUser")
        if uid is not None:
            args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
        if pod_sc.get("fsGroup") is not None:
            args += ["--group-add", str(pod_sc["fsGroup"])]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        caps = sc.get("capabilities", {})
        for cap in caps.get("drop", []):
            args += ["--cap-drop", cap]
        for cap in caps.get("add", []):
            args += ["--cap-add", cap]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(memory_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(cpus(limits["cpu"]))]
        for env in container.get("env", []):
            if "value" in env:
                args += ["--env", f"{env['name']}={env['value']}"]
            else:
                ref = env["valueFrom"]["secretKeyRef"]
                args += ["--env", f"{env['name']}={self.secrets[(ref['name'], ref['key'])]}"]
        for port in container.get("ports", []):
            host = (host_ports or {}).get(port["containerPort"], "")
            args += ["--publish", f"127.0.0.1:{host}:{port['containerPort']}"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            vol = volumes[mount["name"]]
            read_only = mount.get("readOnly", False)
            if "emptyDir" in vol:
                args += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"]
            elif "configMap" in vol:
                folder = self._config_dir(vol["configMap"]["name"])
                args += [
                    "--mount",
                    f"type=bind,source={folder},destination={mount['mountPath']},ro",
                ]
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]
                src = self.volume(claim["claimName"], pod_sc.get("fsGroup"))
                ro = read_only or claim.get("readOnly", False)
                args += [
                    "--mount",
                    f"type=volume,source={src},destination={mount['mountPath']}"
                    + (",readonly" if ro else ""),
                ]
            else:
                raise AssertionError(f"{name}: unsupported volume {vol}")
        command = container.get("command")
        if command:
            args += ["--entrypoint", command[0]]
        args.append(container["image"])
        if command:
            args += command[1:]
        args += container.get("args", [])
        return args, container

    def start(self, doc: Doc, **kwargs: Any) -> Pod:
        """Start a workload's container as rendered; returns a handle to probe and inspect it."""
        args, container = self.run_args(doc, **kwargs)
        cid = docker("run", *args).stdout.strip()
        self.containers.append(cid)
        return Pod(cid, container)

    def close(self) -> None:
        """Remove every container, volume and the network this cluster created."""
        for cid in self.containers:
            docker("rm", "-f", "-v", cid, check=False)
        for name in self.volumes:
            docker("volume", "rm", "-f", name, check=False)
        if self.owns_network:
            docker("network", "rm", self.network, check=False)


@dataclass
class Pod:
    """A running container started from a rendered container spec."""

    cid: str
    spec: Doc

    def port(self, container_port: int | str) -> int:
        """The 127.0.0.1 port published for a container port (number or name)."""
        if isinstance(container_port, str) and not container_port.isdigit():
            (container_port,) = [
                p["containerPort"] for p in self.spec["ports"] if p.get("name") == container_port
            ]
        out = docker("port", self.cid, f"{container_port}/tcp").stdout.strip().splitlines()[0]
        return int(out.rsplit(":", 1)[1])

    def inspect(self) -> Doc:
        """``docker inspect`` of the container."""
        return json.loads(docker("inspect", self.cid).stdout)[0]

    def logs(self) -> str:
        """Everything the container printed."""
        done = docker("logs", self.cid, check=False)
        return done.stdout + done.stderr

    def url(self, container_port: int | str) -> str:
        """``http://127.0.0.1:<published port>``."""
        return f"http://127.0.0.1:{self.port(container_port)}"

    def probe_ok(self, probe: Doc) -> bool:
        """One attempt of a rendered httpGet or tcpSocket probe."""
        if "httpGet" in probe:
            get = probe["httpGet"]
            try:
                reply = httpx.get(f"{self.url(get['port'])}{get['path']}", timeout=2.0)
            except httpx.HTTPError:
                return False
            return 200 <= reply.status_code < 400
        if "tcpSocket" in probe:
            try:
                with socket.create_connection(
                    ("127.0.0.1", self.port(probe["tcpSocket"]["port"])), 2
                ):
                    return True
            except OSError:
                return False
        raise AssertionError(f"unsupported probe {probe}")

    def wait_ready(self, timeout_s: float = 180) -> float:
        """Poll the rendered readiness probe until it passes; returns the seconds it took.

        Raises:
            AssertionError: the container exited or never became ready (with its logs).
        """
        start = time.monotonic()
        probe = self.spec["readinessProbe"]
        while time.monotonic() - start < timeout_s:
            state = self.inspect()["State"]
            if not state["Running"] and not state["Restarting"]:
                raise AssertionError(f"container exited before ready:\n{self.logs()[-3000:]}")
            if self.probe_ok(probe):
                return time.monotonic() - start
            time.sleep(0.5)
        raise AssertionError(f"not ready after {timeout_s:.0f} s:\n{self.logs()[-3000:]}")

    def wait_exit(self, timeout_s: float = 300) -> int:
        """Wait for a run-to-completion container (a Job) and return its exit code."""
        done = docker("wait", self.cid, timeout=timeout_s)
        return int(done.stdout.strip())
