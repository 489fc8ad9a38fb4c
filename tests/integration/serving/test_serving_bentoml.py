"""The real thing: both Bento services under ``bentoml serve`` on free ports.

kserve's InferenceRESTClient speaks V2 to them, /metrics carries ours, and a
property-based fuzz over each OpenAPI schema (schemathesis) finds no 5xx and leaves both alive.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from schemathesis.generation import GenerationMode
from tests.integration.conftest import free_port

from shelfops.serving.package import project_root, serve_command, wait_ready
from shelfops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def live(
    trained_home: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``bentoml serve`` of both services on free loopback ports; yields their base URLs."""
    logs = tmp_path_factory.mktemp("serve-logs")
    procs: dict[str, tuple[subprocess.Popen[bytes], Path, str]] = {}
    for model in ("recs", "demand"):
        port = free_port()
        argv, env = serve_command(trained_home, model, port)
        log = logs / f"{model}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=os.environ | env, cwd=project_root(), stdout=out, stderr=out
            )
        procs[model] = (proc, log, f"http://127.0.0.1:{port}")
    try:
        for proc, log, url in procs.values():
            if not wait_ready(url, proc, 240):
                pytest.fail(f"{url} never became ready:\n{log.read_text()[-3000:]}")
        yield {model: url for model, (_, _, url) in procs.items()}
    finally:
        for proc, _, _ in procs.values():
            proc.terminate()
        for proc, _, _ in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_kserve_client_speaks_v2_to_both_bentos(
    live: dict[str, str], trained_home: Settings
) -> None:
    """Server/model readiness and inference through kserve's client over real HTTP."""
    import pandas as pd

    behaviour = pd.read_parquet(trained_home.features_dir / "customer_behaviour.parquet")
    customer = str(behaviour["customer_id"].iloc[0])
    catalog = pd.read_parquet(trained_home.features_dir / "product_catalog.parquet")
    codes = catalog.loc[~catalog["discontinued"], "stock_code"].head(3).tolist()

    async def run() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            for model, url in live.items():
                assert await client.is_server_live(url)
                assert await client.is_server_ready(url)
                assert await client.is_model_ready(url, model)
            rec = await client.infer(
                live["recs"],
                InferRequest(
                    model_name="recs",
                    infer_inputs=[InferInput("customer_id", [1], "BYTES", data=[customer])],
                ),
                model_name="recs",
            )
            assert rec.get_output_by_name("stock_code").shape == [1, 10]
            dem = await client.infer(
                live["demand"],
                InferRequest(
                    model_name="demand",
                    infer_inputs=[InferInput("stock_code", [len(codes)], "BYTES", data=codes)],
                ),
                model_name="demand",
            )
            p50 = dem.get_output_by_name("p50").as_numpy()
            assert p50.shape[0] == len(codes) and (p50 >= 0).all()
            with pytest.raises(httpx.HTTPStatusError, match="404"):
                await client.infer(
                    live["recs"],
                    InferRequest(model_name="nope", infer_inputs=[]),
                    model_name="nope",
                )
        finally:
            await client.close()

    asyncio.run(run())
    r = httpx.post(f"{live['recs']}/recommend", json={"customer_id": customer, "k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    version = r.headers["x-shelfops-model-version"]
    metrics = httpx.get(f"{live['recs']}/metrics").text
    assert "shelfops_request_duration_seconds_bucket" in metrics
    assert f'model_version="{version}"' in metrics


FUZZ_EXAMPLES = int(os.environ.get("SHELFOPS_FUZZ_EXAMPLES", "30"))
"""Examples per operation and generation mode (``SHELFOPS_FUZZ_EXAMPLES``): 30 in ``make test``,
500 in ``make fuzz`` (500 would add 8 to 10 minutes to the suite; docs/benchmarks.md)."""

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    # No shrinking: a failing case is reported as generated (the assertion shows the request);
    # shrinking a nested V2 body can take minutes and only runs on a failure anyway.
    phases=[Phase.explicit, Phase.generate],
)
UNKNOWN_MODEL_BODIES = min(FUZZ_EXAMPLES, 50)
"""Examples of a body-carrying route under a random model name: the 404 comes before the body
is read, so the body's examples belong to the served model's name (``FUZZ_EXAMPLES`` each)."""


def _checker(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    sent: dict[str, int],
    model: str | None,
    session: requests.Session,
) -> Any:
    key = f"{mode.value} {operation.label}" + (f" model={model}" if model else "")
    sent[key] = 0
    fixed = {"path_parameters": {"model": model}} if model else {}

    unknown_model = "{model}" in operation.path and not model
    examples = UNKNOWN_MODEL_BODIES if unknown_model and operation.body else FUZZ_EXAMPLES

    @settings(FUZZ, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        sent[key] += 1
        assert response.status_code < 500, (
            case.method,
            case.path,
            case.body,
            response.status_code,
            response.text[:300],
        )

    return check


def fuzz(base_url: str, model: str) -> dict[str, int]:
    """Send schema-valid and schema-violating requests to every operation; no 5xx allowed.

    Returns:
        Requests sent per operation and generation mode.
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    sent: dict[str, int] = {}
    with requests.Session() as session:  # one kept-alive connection, as clients use
        for result in schema.get_all_operations():
            operation = result.ok()
            # Random model names (mostly 404s), then the served model's own name in the path.
            for name in (None, model) if "{model}" in operation.path else (None,):
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        _checker(operation, mode, base_url, sent, name, session)()
                    except Unsatisfiable:
                        # Nothing to make invalid (no body, no free parameter): positive only.
                        assert mode is GenerationMode.NEGATIVE
    return sent


@pytest.mark.parametrize("model", ["recs", "demand"])
def test_fuzz_over_the_openapi_schema_finds_no_5xx(live: dict[str, str], model: str) -> None:
    """FUZZ_EXAMPLES requests per body operation and mode never get a 5xx."""
    sent = fuzz(live[model], model)
    friendly = "/recommend" if model == "recs" else "/forecast"
    for key in (
        f"positive POST {friendly}",
        f"negative POST {friendly}",
        f"positive POST /v2/models/{{model}}/infer model={model}",
        f"negative POST /v2/models/{{model}}/infer model={model}",
    ):
        assert sent.get(key, 0) >= FUZZ_EXAMPLES, (key, sent)


def test_servers_are_alive_after_the_fuzz(live: dict[str, str]) -> None:
    """Both servers still answer health and a real request after the fuzz."""
    for url in live.values():
        assert httpx.get(f"{url}/v2/health/live").status_code == 200
    assert (
        httpx.post(f"{live['recs']}/recommend", json={"customer_id": "after-fuzz"}).status_code
        == 200
    )
