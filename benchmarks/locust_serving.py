"""Locust users for the serving benchmark: one harness, three targets.

* ``FloorUser``: calls the recommendation server in the Locust process (no HTTP): the floor.
* ``ShelfOpsV2User`` / ``ShelfOpsRecommendUser``: ShelfOps' BentoML service over HTTP (V2 and
  friendly JSON).
* ``KServeV2User``: the stock ``kserve.ModelServer`` peer over HTTP (V2).

Every user asks for 10 items for a customer drawn from the feature tables (80% customers with
history, 20% unknown ids for cold start). ``SHELFOPS_HOME`` points at the home with the models.
Users think ``SHELFOPS_BENCH_THINK_S`` seconds on average between requests (default 1, like a
shopper's page views; 0 saturates the server to measure its capacity).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from locust import User, events, task
from locust.contrib.fasthttp import FastHttpUser

from shelfops.serving.headers import SYNTHETIC

_lock = threading.Lock()
_state: dict[str, Any] = {}


def think(_user: Any) -> float:
    """Seconds between a user's requests: uniform around the configured mean."""
    mean = float(os.environ.get("SHELFOPS_BENCH_THINK_S", "1.0"))
    return random.uniform(0.5 * mean, 1.5 * mean) if mean > 0 else 0.0


def _home() -> Path:
    return Path(os.environ.get("SHELFOPS_HOME", "local_outputs")).resolve()


def customers() -> list[str]:
    """Known customer ids (read once per process)."""
    with _lock:
        if "customers" not in _state:
            frame = pd.read_parquet(_home() / "features" / "customer_behaviour.parquet")
            _state["customers"] = frame["customer_id"].astype(str).unique().tolist()
        return list(_state["customers"])


def pick_customer(rng: random.Random) -> str:
    """80% known customers, 20% cold-start ids."""
    known = customers()
    return rng.choice(known) if rng.random() < 0.8 else f"new-{rng.randrange(10**6)}"


def v2_body(customer: str) -> dict[str, Any]:
    """A V2 inference request for one customer and k=10."""
    return {
        "inputs": [
            {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer]},
            {"name": "k", "datatype": "INT32", "shape": [1], "data": [10]},
        ]
    }


def _floor_server() -> Any:
    """The in-process recommendation server, loaded once per process."""
    from shelfops.registry import RECS_MODEL
    from shelfops.serving.recs import RecsServer
    from shelfops.settings import ServingSettings, Settings

    with _lock:
        if "server" not in _state:
            settings = Settings(home=_home())
            base = settings.bentoml_home / "models" / RECS_MODEL
            version = (base / "latest").read_text().strip()
            server = RecsServer(settings, ServingSettings())
            server.load(base / version / "model", f"{RECS_MODEL}:{version}")
            _state["server"] = server
        return _state["server"]


@events.init.add_listener
def _load_floor_server(environment: Any, **_: Any) -> None:
    """Load the floor's server before the clock starts (loading is not part of the floor)."""
    if any(cls.__name__ == "FloorUser" for cls in environment.user_classes):
        _floor_server()


class FloorUser(User):
    """The recommendation server called in process: the latency floor."""

    wait_time = think

    def on_start(self) -> None:
        """Use the server loaded before the run (see :func:`_load_floor_server`)."""
        _floor_server()
        self.rng = random.Random(id(self))

    @task
    def recommend(self) -> None:
        """One in-process recommendation, reported to Locust like a request."""
        from shelfops.serving.schemas import RecommendRequest

        server = _state["server"]
        started = time.perf_counter()
        error: Exception | None = None
        try:
            server.recommend(
                RecommendRequest(customer_id=pick_customer(self.rng), k=10), synthetic=True
            )
        except Exception as exc:  # reported as a failure
            error = exc
        self.environment.events.request.fire(
            request_type="CALL",
            name="recommend",
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            exception=error,
            context={},
        )


class _HttpUser(FastHttpUser):
    abstract = True
    wait_time = think

    def on_start(self) -> None:
        self.rng = random.Random(id(self))


class ShelfOpsV2User(_HttpUser):
    """ShelfOps over HTTP, V2 protocol."""

    @task
    def infer(self) -> None:
        """POST /v2/models/recs/infer."""
        self.client.post(
            "/v2/models/recs/infer",
            json=v2_body(pick_customer(self.rng)),
            name="v2",
            headers=SYNTHETIC,
        )


class ShelfOpsRecommendUser(_HttpUser):
    """ShelfOps over HTTP, friendly JSON."""

    @task
    def recommend(self) -> None:
        """POST /recommend."""
        body = {"customer_id": pick_customer(self.rng), "k": 10}
        self.client.post("/recommend", json=body, name="recommend", headers=SYNTHETIC)


class KServeV2User(_HttpUser):
    """The stock kserve.ModelServer peer, V2 protocol."""

    @task
    def infer(self) -> None:
        """POST /v2/models/recs/infer."""
        self.client.post(
            "/v2/models/recs/infer",
            json=v2_body(pick_customer(self.rng)),
            name="v2",
            headers=SYNTHETIC,
        )
