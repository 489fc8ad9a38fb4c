"""A property-based fuzz of both Bento services under ``bentoml serve`` (``live``).

Schemathesis sends schema-valid and schema-violating requests to every operation of each OpenAPI
schema: no 5xx, and both servers answer afterwards. Its own file so that pytest-xdist
(``--dist loadfile``) can run it beside the other serving files instead of after them.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

pytestmark = [pytest.mark.integration, pytest.mark.slow]


FUZZ_EXAMPLES = int(os.environ.get("SHELFOPS_FUZZ_EXAMPLES", "500"))
"""Examples per operation and generation mode (``SHELFOPS_FUZZ_EXAMPLES``): 500 in ``make test``
(issue 13's floor), 2,000 in ``make fuzz``; fewer for a quick local look."""

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
