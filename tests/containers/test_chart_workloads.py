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
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shelfops.containers import pipeline_steps
from shelfops.containers.pods import Cluster, Pod, docker, memory_bytes, pod_template
from shelfops.containers.release import IMAGES, RELEASE, TAG
from shelfops.containers.revisions import ContainerRevisions, container_backend, container_name
from shelfops.rollout.factory import build_engine
from shelfops.rollout.processes import free_port
from shelfops.settings import RolloutSettings, Settings
from tests.containers.conftest import IMAGES_REPORT, render

pytestmark = [pytest.mark.containers, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "pipelines" / "compiled" / "training_pipeline.yaml"
STATE: dict[str, Any] = {}
FIRST_CUSTOMER = "12346"  # the generator numbers customers from here


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


def run_pipeline_step(
    cluster: Cluster,
    name: str,
    parameters: dict[str, Any],
    artifacts: dict[str, str],
    inputs: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One compiled pipeline step as the KFP launcher runs it (shelfops.containers)."""
    return pipeline_steps.run_pipeline_step(cluster, COMPILED, name, parameters, artifacts, inputs)


def test_pipeline_steps_share_the_home_volume(cluster: Cluster, generated: dict[str, int]) -> None:
    """ingest-data and build-features run from the compiled pipeline; features reach Redis."""
    volume = cluster.volume(f"{RELEASE}-home", 10001)
    # Setup, not a pipeline step: the generated export the ingest step reads by default.
    argv = ["--rm", "--user", "10001:10001", "--env", "SHELFOPS_HOME=/var/lib/shelfops"]
    argv += ["--mount", f"type=volume,source={volume},destination=/var/lib/shelfops"]
    flags = [f"--{k}={v}" for k, v in generated.items()]
    docker("run", *argv, f"shelfops:{TAG}", "data", "generate", *flags, timeout=300)

    ingest = run_pipeline_step(
        cluster,
        "ingest-data",
        {
            "home": "",
            "transactions": "",
            "customers": "",
            "products": "",
            "promotions": "",
            "as_of": "",
        },
        {"clean": "system.Dataset", "quality_report": "system.Markdown"},
    )
    assert ingest["parameterValues"]["passed"] is True, ingest
    run_pipeline_step(
        cluster,
        "build-features",
        {"home": ""},
        {"features": "system.Dataset"},
        inputs={"clean": ingest["artifacts"]["clean"]["artifacts"][0]},
    )
    keys = redis.Redis(port=STATE["redis"].port("redis")).dbsize()
    assert keys > generated["customers"], f"only {keys} keys in Redis after build-features"


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
        json={"feature_service": "recs_v1", "entities": {"customer_id": [FIRST_CUSTOMER]}},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["metadata"]["feature_names"], body


def _known_customer(pod: Pod) -> str:
    """A customer the model knows (it is in the online store and bought before the cutoff)."""
    client = httpx.Client(base_url=pod.url("http1"), timeout=30)
    for number in range(int(FIRST_CUSTOMER), int(FIRST_CUSTOMER) + 60):
        reply = client.post("/recommend", json={"customer_id": str(number), "k": 5}).json()
        if reply.get("personalized"):
            return str(number)
    raise AssertionError(f"no personalized answer for 60 customers: last reply {reply}")


def test_model_servers_answer_from_redis(cluster: Cluster) -> None:
    """Both InferenceServices run as rendered and answer from Redis: not degraded, personalized."""
    pods = {}
    for model in ("recs", "demand"):
        doc = cluster.find("InferenceService", model)
        pods[model] = cluster.start(doc)
    for model, pod in pods.items():
        pod.wait_ready(480)  # two servers importing torch side by side on a busy 2-core box
        assert_runs_as_declared(pod, cluster.find("InferenceService", model))
    recs = pods["recs"]
    customer = _known_customer(recs)
    reply = httpx.post(
        f"{recs.url('http1')}/recommend", json={"customer_id": customer, "k": 5}, timeout=30
    ).json()
    assert reply["degraded"] is False and reply["personalized"] is True, reply
    assert len(reply["items"]) == 5
    demand = pods["demand"]
    codes = [item["stock_code"] for item in reply["items"]]
    forecast = httpx.post(
        f"{demand.url('http1')}/forecast", json={"stock_codes": codes, "horizon": 4}, timeout=30
    ).json()
    assert forecast["degraded"] is False, forecast
    # Products with recent sales are forecast by the model (others have no data to go on).
    assert "model" in {f["source"] for f in forecast["forecasts"]}, forecast
    STATE["models"] = pods
    STATE["customer"] = customer


def test_every_chart_image_is_local(cluster: Cluster) -> None:
    """Every image the release runs is one `make images` built (nothing pulled from a registry)."""
    used = set()
    for doc in cluster.docs:
        if doc["kind"] in {"Deployment", "CronJob", "InferenceService"}:
            used |= {c["image"] for c in pod_template(doc)[1]["containers"]}
    assert used == {f"{repo}:{TAG}" for repo in IMAGES.values()}


def test_redis_restart_under_load_degrades_then_recovers(cluster: Cluster) -> None:
    """Drill: Redis restarts under load; answers degrade, never 5xx; personalization comes back.

    The bundled Redis keeps no data (emptyDir, no persistence), so personalization returns once
    the materialization job runs again, without restarting the model server.
    """
    recs, customer = STATE["models"]["recs"], STATE["customer"]
    client = httpx.Client(base_url=recs.url("http1"), timeout=10)
    outcomes: list[tuple[float, int, bool]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            reply = client.post("/recommend", json={"customer_id": customer, "k": 5})
            degraded = reply.status_code == 200 and reply.json()["degraded"]
            outcomes.append((time.monotonic(), reply.status_code, degraded))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    time.sleep(2)
    docker("stop", "--time", "1", STATE["redis"].cid)
    outage_start = time.monotonic()
    time.sleep(5)
    docker("start", STATE["redis"].cid)
    STATE["redis"].wait_ready(60)
    cronjob = cluster.find("CronJob", f"{RELEASE}-materialize")
    rerun = cluster.start(cronjob, name=f"{cluster.prefix}-materialize-next-tick")
    assert rerun.wait_exit(300) == 0, rerun.logs()[-2000:]
    back = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and back is None:
        reply = client.post("/recommend", json={"customer_id": customer, "k": 5}).json()
        if reply["personalized"] and not reply["degraded"]:
            back = time.monotonic()
        time.sleep(0.5)
    stop.set()
    worker.join(15)
    during = [o for o in outcomes if o[0] >= outage_start]
    errors = [o for o in outcomes if o[1] >= 500]
    print(
        f"redis drill: {len(outcomes)} requests, {len(errors)} 5xx, "
        f"{sum(o[2] for o in during)} degraded after the stop, personalized again "
        f"{(back or float('nan')) - outage_start:.1f} s after the stop"
    )
    assert not errors, errors[:5]
    assert any(o[2] for o in during), "no degraded answer while Redis was down"
    assert back is not None, "personalization did not come back after re-materialization"
    # Thousands of answers later, nothing the server did failed on its read-only volumes (its
    # prediction logger is off: the payload sink owns the log in a cluster).
    assert "Read-only file system" not in recs.logs(), recs.logs()[-2000:]


def _revisions_like_the_chart(cluster: Cluster, model: str) -> ContainerRevisions:
    """Revision containers with the env and home claim of the chart's rendered predictor."""
    _, predictor = pod_template(cluster.find("InferenceService", model))
    (container,) = predictor["containers"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in predictor["volumes"]
        if "persistentVolumeClaim" in v
    ]
    revisions_cluster = Cluster(
        prefix=cluster.prefix,
        namespace=cluster.namespace,
        docs=cluster.docs,
        network=cluster.network,
        secrets=cluster.secrets,
    )
    return ContainerRevisions(
        revisions_cluster,
        env={e["name"]: e["value"] for e in container["env"] if "value" in e},
        home_claim=claims[0] if claims else None,
    )


def test_canary_container_killed_under_load(cluster: Cluster, tmp_path: Path) -> None:
    """Drill: the canary container dies under load; the engine rolls back, 0 failures after.

    The rollout engine (local backend, splitter, Locust gate) runs both revisions as containers
    of the Bento image from the engine's own InferenceService manifest. Stable and canary are
    two tags of one image: the drill is about the route, not the model.
    """
    stable = json.loads(IMAGES_REPORT.read_text())["bento_versions"]["recs"]
    canary = TAG
    settings = Settings(home=tmp_path / "home")
    config = RolloutSettings(
        steps=[50, 100],
        gate_users=2,
        gate_duration_s=6,
        ready_timeout_s=480,
        recs_port=free_port(),
        report_dir=tmp_path / "gate",
    )
    revisions = _revisions_like_the_chart(cluster, "recs")
    backend = container_backend(settings, config, revisions)
    events: list[tuple[float, str]] = []
    split, gate_at_50 = threading.Event(), threading.Event()

    def on_event(message: str) -> None:
        events.append((time.monotonic(), message))
        if "traffic (50% canary)" in message:
            split.set()
        if "gate at 50%" in message:
            gate_at_50.set()

    engine = build_engine(settings, "local", config, on_event=on_event, backend=backend)
    outcomes: list[tuple[float, int, str]] = []
    stop = threading.Event()
    try:
        first = engine.deploy("recs", stable)
        assert first.outcome == "promoted", first.reason
        client = httpx.Client(base_url=f"http://127.0.0.1:{config.recs_port}", timeout=30)

        def load() -> None:
            while not stop.is_set():
                try:
                    reply = client.post("/recommend", json={"customer_id": FIRST_CUSTOMER, "k": 5})
                    code, served = reply.status_code, reply.headers.get("X-ShelfOps-Revision", "")
                except httpx.HTTPError as exc:
                    code, served = 0, type(exc).__name__
                outcomes.append((time.monotonic(), code, served))

        worker = threading.Thread(target=load, daemon=True)
        result: list[Any] = []
        rollout = threading.Thread(target=lambda: result.append(engine.deploy("recs", canary)))
        rollout.start()
        assert split.wait(600), events  # the canary starts unloaded, then takes half the load
        worker.start()
        assert gate_at_50.wait(60), events
        time.sleep(3)
        killed_at = time.monotonic()
        docker("kill", container_name(cluster.prefix, "recs", canary))
        rollout.join(300)
        time.sleep(3)
        stop.set()
        worker.join(30)
    finally:
        stop.set()
        backend.stop("recs")
        revisions.remove_all()
    (outcome,) = result
    swap = next(t for t, message in events if "rollback_started" in message)
    failed = [o for o in outcomes if not 200 <= o[1] < 300]
    before_kill = [o for o in outcomes if o[0] < killed_at]
    window = [o for o in outcomes if killed_at <= o[0] < swap]
    after = [o for o in outcomes if o[0] >= swap]
    print(
        f"canary-kill drill: {len(outcomes)} requests through the splitter, "
        f"{sum(o[2] == canary for o in before_kill)} served by the canary before the kill; "
        f"{len(failed)} failed in all, "
        f"{sum(not 200 <= o[1] < 300 for o in window)} of {len(window)} between the kill and "
        f"the route swap ({swap - killed_at:.1f} s, the gate decides), "
        f"{sum(not 200 <= o[1] < 300 for o in after)} of {len(after)} after it; "
        f"outcome {outcome.outcome}: {outcome.reason}"
    )
    assert outcome.outcome == "rolled_back", outcome.reason
    assert any(o[2] == canary for o in before_kill), "the canary served nothing before the kill"
    assert after and not [o for o in after if not 200 <= o[1] < 300], after[:5]
    assert {o[2] for o in after} == {stable}


def test_model_container_over_its_memory_limit_is_restarted(cluster: Cluster) -> None:
    """Drill: a predictor rendered with a 300Mi limit is OOM-killed (137) and restarted."""
    docs = render(sets=("models.recs.resources.limits.memory=300Mi",))
    (doc,) = [
        d for d in docs if d["kind"] == "InferenceService" and d["metadata"]["name"] == "recs"
    ]
    since = str(int(time.time()))
    pod = cluster.start(doc, name=f"{cluster.prefix}-recs-oom")
    start, ooms, restarts = time.monotonic(), 0, 0
    while time.monotonic() - start < 120 and not (ooms and restarts):
        time.sleep(2)
        events = docker(
            "events", "--since", since, "--until", str(int(time.time())),
            "--filter", f"container={pod.cid}", "--format", "{{.Status}}",
        ).stdout.split()  # fmt: skip
        ooms = events.count("oom")
        restarts = pod.inspect()["RestartCount"]
    print(
        f"memory drill: limit 300Mi, {ooms} OOM kills, {restarts} restarts "
        f"in {time.monotonic() - start:.0f} s"
    )
    assert ooms >= 1, "the container was never OOM-killed"
    assert restarts >= 1, "the OOM-killed container was not restarted"


def test_tools_image_holds_what_packaging_and_the_gate_need(engine: None) -> None:
    """The tools image ships serving/ and loadtests/ (packaging, the gate); its home is writable."""
    script = (
        "test -f /app/serving/recs/bentofile.yaml && test -f /app/loadtests/locustfile.py "
        '&& touch "$SHELFOPS_HOME/probe" && echo ok'
    )
    done = docker(
        "run", "--rm", "--entrypoint", "sh", f"shelfops:{TAG}", "-c", script,
    )  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr
