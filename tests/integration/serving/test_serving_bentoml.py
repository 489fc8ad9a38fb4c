"""The real thing: both Bento services under ``bentoml serve`` on free ports (``live``).

kserve's InferenceRESTClient speaks V2 to them and /metrics carries ours; the schemathesis fuzz
of the same servers is ``test_serving_fuzz.py``.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from shelfops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
