"""Compiled Kubeflow pipeline steps as containers, the way the KFP launcher runs them.

Each step runs with its own image, command and args from the compiled pipeline; the executor
input is built here (the launcher's job); the PVC, the ConfigMap-to-env bindings and the Redis
Secret volume come from the compiled platform spec, with the claim, ConfigMap and Secret the chart
rendered. :func:`run_tool` runs any other ``shelfops`` command (setup, privacy requests) with the
same bindings, so one-off jobs see the home, Redis and the registry exactly as the steps do.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shelfops.containers.pods import DOCKER, Cluster, docker
from shelfops.containers.release import RELEASE

HOME_UID = 10001
"""The tools image's user; the home volume is owned by it (the chart's fsGroup)."""


def executor(compiled: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A compiled pipeline executor (``exec-<step>``) and its Kubernetes platform config."""
    spec, platform = yaml.safe_load_all(compiled.read_text())
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][name]
    return spec["deploymentSpec"]["executors"][name]["container"], k8s


def binding_args(cluster: Cluster, k8s: dict[str, Any]) -> list[str]:
    """``docker run`` arguments for a step's ConfigMap env, Redis Secret volume and home PVC."""
    # Imported here: the pipelines package imports kfp, which the harness needs only for this.
    from pipelines.training import DEFAULT_REDIS_SECRET

    argv: list[str] = []
    for binding in k8s["configMapAsEnv"]:
        config_map = cluster.find("ConfigMap", f"{RELEASE}-env")  # the pipeline's cluster_env
        for pair in binding["keyToEnv"]:
            argv += ["--env", f"{pair['envVar']}={config_map['data'][pair['configMapKey']]}"]
    for secret in k8s.get("secretAsVolume", []):
        # The pipeline's redis_secret parameter keeps its default in these runs.
        name_param = secret["secretNameParameter"]["componentInputParameter"]
        secret_name = DEFAULT_REDIS_SECRET if name_param.endswith("redis_secret") else name_param
        keys = {k: v for (n, k), v in cluster.secrets.items() if n == secret_name}
        if not keys:
            if not secret["optional"]:
                raise RuntimeError(f"Secret {secret_name} is missing")
            continue
        folder = cluster.workdir / "secrets" / secret_name
        folder.mkdir(parents=True, exist_ok=True)
        for key, value in keys.items():
            (folder / key).write_text(value)
            (folder / key).chmod(0o644)
        argv += ["--mount", f"type=bind,source={folder},destination={secret['mountPath']},ro"]
    for mount in k8s["pvcMount"]:
        volume = cluster.volume(f"{RELEASE}-home", HOME_UID)  # the chart's home claim
        argv += ["--mount", f"type=volume,source={volume},destination={mount['mountPath']}"]
    return argv


def run_pipeline_step(
    cluster: Cluster,
    compiled: Path,
    name: str,
    parameters: dict[str, Any],
    artifacts: dict[str, str],
    inputs: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run one compiled pipeline step as the KFP launcher would: its own image, command and args.

    Args:
        cluster: The release's network, volumes and secrets.
        compiled: The compiled pipeline YAML.
        name: Step name in the compiled pipeline (``ingest-data``).
        parameters: Input parameter values.
        artifacts: Output artifact name -> schema title.
        inputs: Input artifact name -> an artifact of an earlier step's executor output.

    Returns:
        The step's executor output (``parameterValues`` and ``artifacts``).

    Raises:
        RuntimeError: The step failed (with the end of its output).
    """
    container, k8s = executor(compiled, f"exec-{name}")
    root = k8s["pvcMount"][0]["mountPath"]
    run_dir = f"{root}/kfp/{name}"
    executor_input = {
        "inputs": {
            "parameterValues": parameters,
            "artifacts": {key: {"artifacts": [art]} for key, art in (inputs or {}).items()},
        },
        "outputs": {
            "artifacts": {
                key: {
                    "artifacts": [
                        {
                            "name": key,
                            "type": {"schemaTitle": kind},
                            "uri": f"{run_dir}/{key}",
                            "metadata": {},
                        }
                    ]
                }
                for key, kind in artifacts.items()
            },
            "outputFile": f"{run_dir}/executor_output.json",
        },
    }
    args = [a.replace("{{$}}", json.dumps(executor_input)) for a in container["args"]]
    argv = ["--rm", "--network", cluster.network, *cluster.label_args()]
    for env in container.get("env", []):
        argv += ["--env", f"{env['name']}={env['value']}"]
    argv += binding_args(cluster, k8s)
    argv += ["--entrypoint", container["command"][0], container["image"]]
    done = docker("run", *argv, *container["command"][1:], *args, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    volume = cluster.volume(f"{RELEASE}-home", HOME_UID)
    read = docker(
        "run", "--rm", "--mount", f"type=volume,source={volume},destination={root}",
        "--entrypoint", "cat", container["image"], f"{run_dir}/executor_output.json",
    )  # fmt: skip
    output: dict[str, Any] = json.loads(read.stdout)
    for key, kind in artifacts.items():  # the launcher records uri and type with the metadata
        for art in output.setdefault("artifacts", {}).setdefault(key, {"artifacts": [{}]})[
            "artifacts"
        ]:
            art.update(name=key, uri=f"{run_dir}/{key}", type={"schemaTitle": kind})
    return output


def run_tool(
    cluster: Cluster,
    compiled: Path,
    image: str,
    *argv: str,
    entrypoint: str | None = None,
    binary_stdout: Path | None = None,
    timeout: float = 900,
) -> str:
    """Run a command in the tools image with the bindings every pipeline step has.

    Args:
        cluster: The release's network, volumes and secrets.
        compiled: The compiled pipeline (its ``ingest-data`` step's bindings are used).
        image: The tools image.
        *argv: Arguments after the entrypoint (default entrypoint: ``shelfops``).
        entrypoint: Another program to run instead.
        binary_stdout: Write the raw stdout to this file instead of returning it.
        timeout: Seconds before giving up.

    Returns:
        What the command printed on stdout (empty when ``binary_stdout`` is given).

    Raises:
        RuntimeError: The command failed.
    """
    _, k8s = executor(compiled, "exec-ingest-data")
    args = ["run", "--rm", "--network", cluster.network, *cluster.label_args()]
    args += ["--env", f"SHELFOPS_HOME={k8s['pvcMount'][0]['mountPath']}"]
    args += binding_args(cluster, k8s)
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    args += [image, *argv]
    if binary_stdout is not None:
        with binary_stdout.open("wb") as out:
            done_b = subprocess.run(
                [DOCKER, *args], stdout=out, stderr=subprocess.PIPE, timeout=timeout, check=False
            )
        if done_b.returncode != 0:
            raise RuntimeError(f"{argv[:2]} failed: {done_b.stderr.decode()[-2000:]}")
        return ""
    done = docker(*args, check=False, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout
