"""ShelfOps traffic: recommendations and demand forecasts with real ids from the clean tables.

Run through ``shelfops loadtest run|gate`` (which prepares the traffic sample and reads the
CSV stats), or directly::

    SHELFOPS_LOADTEST_SAMPLE=local_outputs/loadtests/sample.json \
    locust -f loadtests/locustfile.py RecsUser --headless -u 4 -r 4 -t 30s \
        --host http://127.0.0.1:3100 --csv out/recs --html out/recs.html

Environment:
    SHELFOPS_LOADTEST_SAMPLE: JSON file ``{"customers", "stock_codes", "categories"}`` (lists)
        (without it, synthetic ids are used and a warning is printed).
    SHELFOPS_LOADTEST_RECS_URL / SHELFOPS_LOADTEST_DEMAND_URL: per-class hosts when both user
        classes run together (``--host`` overrides both).
    SHELFOPS_LOADTEST_PROFILE: ``spike`` activates the spike LoadTestShape (smoke, gate and soak
        are plain ``-u/-t`` runs); SHELFOPS_LOADTEST_USERS and SHELFOPS_LOADTEST_DURATION_S size it.
    SHELFOPS_LOADTEST_MAX_P95_MS / _MAX_P99_MS / _MAX_ERROR_RATE: when set, Locust itself exits
        non-zero on a breach (the ``shelfops`` gate also judges the CSV).

Every request carries ``X-ShelfOps-Synthetic: true``: the services answer it as usual but keep it
out of the prediction log, drift, accuracy, adoption and cost.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, events, task

from shelfops.serving.headers import SYNTHETIC

log = logging.getLogger("shelfops.loadtest")


def _load_sample() -> dict[str, list[str]]:
    path = os.environ.get("SHELFOPS_LOADTEST_SAMPLE")
    if path and Path(path).is_file():
        data = json.loads(Path(path).read_text())
        return {
            "customers": data["customers"],
            "stock_codes": data["stock_codes"],
            "categories": data.get("categories", []),
        }
    log.warning("no SHELFOPS_LOADTEST_SAMPLE: using synthetic ids (cold-start traffic only)")
    return {
        "customers": [str(12346 + i) for i in range(200)],
        "stock_codes": [f"{10000 + i}" for i in range(100)],
        "categories": [],
    }


SAMPLE: dict[str, list[str]] = {}
ENVIRONMENT: list[Any] = []


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    SAMPLE.update(_load_sample())
    ENVIRONMENT.append(environment)


@events.quit.add_listener
def _write_final_stats(**_: Any) -> None:
    """Write ``<csv prefix>_final_stats.csv`` once every request has ended.

    Locust's own ``_stats.csv`` is rewritten once a second and can miss requests that end
    during the stop timeout; the ShelfOps gate reads this file when it exists.
    """
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    if not ENVIRONMENT:
        return
    environment = ENVIRONMENT[0]
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    with open(f"{prefix}_final_stats.csv", "w", newline="") as handle:
        StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(handle))


def _check(response: Any, key: str, nonempty: bool = False) -> None:
    """Mark the request failed unless it is a 200 JSON answer carrying ``key`` (non-empty if asked).

    A recommendation answer with no items is a failure the gate must count: a 200 that shows a
    shopper nothing (every candidate removed by the rules, say) is not a working service.
    """
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}")
        return
    try:
        body = response.json()
    except ValueError:
        response.failure("not JSON")
        return
    if key not in body:
        response.failure(f"no {key!r} in the answer")
    elif nonempty and not body[key]:
        response.failure(f"empty {key!r}: see shelfops_rule_removals_total in /metrics")
    else:
        response.success()


class RecsUser(FastHttpUser):
    """A shopper browsing: personal recommendations, some with a context, some discover lists."""

    host = os.environ.get("SHELFOPS_LOADTEST_RECS_URL")
    wait_time = between(0.01, 0.05)

    def _ask(self, payload: dict[str, Any], name: str, nonempty: bool) -> None:
        """POST ``/recommend`` as gate traffic; a bad or (``nonempty``) empty answer fails."""
        with self.client.post(
            "/recommend", json=payload, name=name, catch_response=True, headers=SYNTHETIC
        ) as resp:
            _check(resp, "items", nonempty=nonempty)

    @task(8)
    def recommend(self) -> None:
        """Top-k recommendations for a known (or occasionally new) customer."""
        payload = {"customer_id": random.choice(SAMPLE["customers"]), "k": random.choice([5, 10])}
        self._ask(payload, "/recommend", nonempty=True)

    @task(2)
    def recommend_in_context(self) -> None:
        """Basket page: exclude what is in the basket, sometimes within one category."""
        context: dict[str, Any] = {
            "exclude_stock_codes": random.sample(SAMPLE["stock_codes"], k=random.randint(1, 3))
        }
        if SAMPLE["categories"] and random.random() < 0.5:
            context["category"] = random.choice(SAMPLE["categories"])
        payload = {"customer_id": random.choice(SAMPLE["customers"]), "k": 10, "context": context}
        self._ask(payload, "/recommend (context)", nonempty=False)

    @task(1)
    def discover(self) -> None:
        """A "new to you" shelf: the discover list, which must not come back empty either."""
        payload = {"customer_id": random.choice(SAMPLE["customers"]), "k": 10, "discover": True}
        self._ask(payload, "/recommend (discover)", nonempty=True)


class DemandUser(FastHttpUser):
    """A planner's tools: forecasts for a handful of products over a season."""

    host = os.environ.get("SHELFOPS_LOADTEST_DEMAND_URL")
    wait_time = between(0.02, 0.1)
    weight = 1

    @task
    def forecast(self) -> None:
        """Forecast 1-5 products 4 to 13 weeks ahead."""
        payload = {
            "stock_codes": random.sample(SAMPLE["stock_codes"], k=random.randint(1, 5)),
            "horizon": random.choice([4, 8, 13]),
        }
        with self.client.post(
            "/forecast", json=payload, name="/forecast", catch_response=True, headers=SYNTHETIC
        ) as resp:
            _check(resp, "forecasts")


RecsUser.weight = 3  # a storefront asks for recommendations far more often than for forecasts


if os.environ.get("SHELFOPS_LOADTEST_PROFILE") == "spike":

    class SpikeShape(LoadTestShape):
        """Baseline load, a sudden 4x burst, then baseline again (defined only for spike)."""

        users = int(os.environ.get("SHELFOPS_LOADTEST_USERS", "16"))
        duration = float(os.environ.get("SHELFOPS_LOADTEST_DURATION_S", "40"))

        def tick(self) -> tuple[int, float] | None:
            """Users and spawn rate for the current second, None when done."""
            t = self.get_run_time()
            base = max(1, self.users // 4)
            if t >= self.duration:
                return None
            if self.duration * 0.4 <= t < self.duration * 0.7:
                return self.users, float(self.users)
            return base, float(self.users)


@events.quitting.add_listener
def _fail_on_breach(environment: Any, **_: Any) -> None:
    """Exit non-zero when optional thresholds from the environment are breached."""
    total = environment.stats.total
    limits = {
        "p95": (
            os.environ.get("SHELFOPS_LOADTEST_MAX_P95_MS"),
            total.get_response_time_percentile(0.95),
        ),
        "p99": (
            os.environ.get("SHELFOPS_LOADTEST_MAX_P99_MS"),
            total.get_response_time_percentile(0.99),
        ),
        "error_rate": (os.environ.get("SHELFOPS_LOADTEST_MAX_ERROR_RATE"), total.fail_ratio),
    }
    for name, (limit, value) in limits.items():
        if limit is not None and value is not None and float(value) > float(limit):
            log.error("%s %.4g breaches the limit %s", name, value, limit)
            environment.process_exit_code = 1
