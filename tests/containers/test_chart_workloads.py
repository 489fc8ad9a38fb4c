"""The chart's workloads run as real containers exactly as `helm template` declares them.

One release (default values, local images) on one engine network: Redis, two pipeline steps from
the compiled Kubeflow pipeline on the shared home volume, the materialization CronJob, the Feast
feature server and both model servers (InferenceServices). Image, command, args, env, ports,
probes, user, read-only root filesystem, capabilities, limits and volumes all come from the
rendered YAML (tests/containers/pods.py); the tests then check what the pods do over the network
paths the chart wires (Service names, the registry on the shared volume, Redis).
The tests run in file order and build on each other, like a deployment does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.containers.conftest import GENERATED, IMAGES, RELEASE, TAG
from tests.containers.pods import Cluster, Pod, docker, memory_bytes, pod_template

pytestmark = [pytest.mark.containers, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "pipelines" / "compiled" / "training_pipeline.yaml"
STATE: dict[str, Any] = {}


def assert_runs_as_declared(pod: Pod, doc: dict[str, Any]) -> None:
    """The running container has the rendered user, hardening, limits and image."""
    _, spec = pod_template(doc)
    sc = {**spec.get("securityContext", {}), **pod.spec.get("securityContext", {})}
    host = pod.inspect()["HostConfig"]
    config = pod.inspect()["Config"]
    assert config["Image"] == pod.spec["image"]
    assert config["User"] == f"{sc['runAsUser']}:{sc['runAsGroup']}"
    assert host["ReadonlyRootfs"] is bool(sc.get("readOnlyRootFilesystem"))
    assert host["CapDrop"] == sc["capabilities"]["drop"]
    assert "no-new-privileges" in (host["SecurityOpt"] or [])
    limit = pod.spec.get("resources", {}).get("limits", {}).get("memory")
    if limit:
        assert host["Memory"] == memory_bytes(limit)


def test_redis_runs_as_rendered(cluster: Cluster) -> None:
    """The bundled Redis Deployment starts, passes its tcp probe and answers on its Service name."""
    doc = cluster.find("Deployment", f"{RELEASE}-redis")
    pod = cluster.start(doc)
    pod.wait_ready(60)
    assert_runs_as_declared(pod, doc)
    assert redis.Redis(port=pod.port("redis")).ping()
    STATE["redis"] = pod


def _executor(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A compiled pipeline executor and its Kubernetes platform config (volumes, env)."""
    spec, platform = yaml.safe_load_all(COMPILED.read_text())
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][name]
    return spec["deploymentSpec"]["executors"][name]["container"], k8s


def run_pipeline_step(
    cluster: Cluster, name: str, parameters: dict[str, Any], artifacts: dict[str, str]
) -> dict[str, Any]:
    """Run one compiled pipeline step as the KFP launcher would: its own image, command and args.

    The executor input is built here (the launcher's job); the PVC and ConfigMap-to-env bindings
    come from the compiled platform spec, with the claim and ConfigMap the chart rendered.

    Returns:
        The step's output parameters.
    """
    container, k8s = _executor(f"exec-{name}")
    root = k8s["pvcMount"][0]["mountPath"]
    run_dir = f"{root}/kfp/{name}"
    executor_input = {
        "inputs": {"parameterValues": parameters},
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
    argv = ["--rm", "--network", cluster.network]
    for env in container.get("env", []):
        argv += ["--env", f"{env['name']}={env['value']}"]
    for binding in k8s["configMapAsEnv"]:
        config_map = cluster.find("ConfigMap", f"{RELEASE}-env")  # the pipeline's cluster_env
        for pair in binding["keyToEnv"]:
            argv += ["--env", f"{pair['envVar']}={config_map['data'][pair['configMapKey']]}"]
    for mount in k8s["pvcMount"]:
        volume = cluster.volume(f"{RELEASE}-home", 10001)  # the chart's home claim
        argv += ["--mount", f"type=volume,source={volume},destination={mount['mountPath']}"]
    argv += ["--entrypoint", container["command"][0], container["image"]]
    done = docker("run", *argv, *container["command"][1:], *args, check=False, timeout=600)
    assert done.returncode == 0, f"{name} failed:\n{(done.stdout + done.stderr)[-3000:]}"
    read = docker(
        "run", "--rm", "--mount", f"type=volume,source={volume},destination={root}",
        "--entrypoint", "cat", container["image"], f"{run_dir}/executor_output.json",
    )  # fmt: skip
    return json.loads(read.stdout).get("parameterValues", {})


def test_pipeline_steps_share_the_home_volume(cluster: Cluster) -> None:
    """ingest-data and build-features run from the compiled pipeline; features reach Redis."""
    volume = cluster.volume(f"{RELEASE}-home", 10001)
    # Setup, not a pipeline step: the generated export the ingest step reads by default.
    argv = ["--rm", "--user", "10001:10001", "--env", "SHELFOPS_HOME=/var/lib/shelfops"]
    argv += ["--mount", f"type=volume,source={volume},destination=/var/lib/shelfops"]
    flags = [f"--{k}={v}" for k, v in GENERATED.items()]
    docker("run", *argv, f"shelfops:{TAG}", "data", "generate", *flags, timeout=300)

    ingest = run_pipeline_step(
        cluster,
        "ingest-data",
        {"home": "", "transactions": "", "customers": "", "products": "", "as_of": ""},
        {"clean": "system.Dataset", "quality_report": "system.Markdown"},
    )
    assert ingest["passed"] is True, ingest
    run_pipeline_step(cluster, "build-features", {"home": ""}, {"features": "system.Dataset"})
    keys = redis.Redis(port=STATE["redis"].port("redis")).dbsize()
    assert keys > GENERATED["customers"], f"only {keys} keys in Redis after build-features"


def test_materialize_cronjob_runs_as_rendered(cluster: Cluster) -> None:
    """The CronJob's container materializes from the registry on the home volume and exits 0."""
    doc = cluster.find("CronJob", f"{RELEASE}-materialize")
    pod = cluster.start(doc)
    code = pod.wait_exit(300)
    assert code == 0, pod.logs()[-3000:]
    assert_runs_as_declared(pod, doc)


def test_feature_server_serves_the_registry(cluster: Cluster) -> None:
    """The feature server Deployment gets ready and serves recs_v1 features for a customer."""
    doc = cluster.find("Deployment", f"{RELEASE}-feature-server")
    pod = cluster.start(doc)
    pod.wait_ready(180)
    assert_runs_as_declared(pod, doc)
    reply = httpx.post(
        f"{pod.url('http')}/get-online-features",
        json={"feature_service": "recs_v1", "entities": {"customer_id": ["C00001"]}},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["metadata"]["feature_names"], body


def _known_customer(pod: Pod) -> str:
    """A customer the model knows (it is in the online store and bought before the cutoff)."""
    client = httpx.Client(base_url=pod.url("http1"), timeout=30)
    for number in range(1, 60):
        customer = f"C{number:05d}"
        reply = client.post("/recommend", json={"customer_id": customer, "k": 5}).json()
        if reply.get("personalized"):
            return customer
    raise AssertionError(f"no personalized answer for C00001..C00059: last reply {reply}")


def test_model_servers_answer_from_redis(cluster: Cluster) -> None:
    """Both InferenceServices run as rendered and answer from Redis: not degraded, personalized."""
    pods = {}
    for model in ("recs", "demand"):
        doc = cluster.find("InferenceService", model)
        pods[model] = cluster.start(doc)
    for model, pod in pods.items():
        pod.wait_ready(240)
        assert_runs_as_declared(pod, cluster.find("InferenceService", model))
    recs = pods["recs"]
    customer = _known_customer(recs)
    reply = httpx.post(
        f"{recs.url('http1')}/recommend", json={"customer_id": customer, "k": 5}, timeout=30
    ).json()
    assert reply["degraded"] is False and reply["personalized"] is True, reply
    assert len(reply["items"]) == 5
    demand = pods["demand"]
    code = reply["items"][0]["stock_code"]
    forecast = httpx.post(
        f"{demand.url('http1')}/forecast", json={"stock_codes": [code], "horizon": 4}, timeout=30
    ).json()
    assert forecast["degraded"] is False, forecast
    assert forecast["forecasts"][0]["source"] == "model", forecast
    STATE["models"] = pods


def test_every_chart_image_is_local(cluster: Cluster) -> None:
    """Every image the release runs is one `make images` built (nothing pulled from a registry)."""
    used = set()
    for doc in cluster.docs:
        if doc["kind"] in {"Deployment", "CronJob", "InferenceService"}:
            used |= {c["image"] for c in pod_template(doc)[1]["containers"]}
    assert used == {f"{repo}:{TAG}" for repo in IMAGES.values()}
