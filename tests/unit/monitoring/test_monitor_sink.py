"""The payload-logger sink pairs KServe request/response CloudEvents into prediction records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shelfops.monitoring.sink import REQUEST_TYPE, RESPONSE_TYPE, PayloadSink
from shelfops.monitoring.store import PredictionLogger, read_predictions
from shelfops.settings import Settings

pytestmark = pytest.mark.unit


def _call(
    app: PayloadSink, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def _binary(event_id: str, kind: str, time: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "ce-id": event_id,
        "ce-type": kind,
        "ce-specversion": "1.0",
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": "recs",
        "ce-namespace": "shelfops",
        "ce-time": time,
    }


def test_request_and_response_become_one_record(tmp_path: Path) -> None:
    """Binary-mode events sharing ce-id are logged once, with customer id, inputs, latency."""
    settings = Settings(home=tmp_path)
    sink = PayloadSink(PredictionLogger(settings, 1.0))
    request = {"customer_id": "C42", "k": 10, "email": None, "nested": {"x": 1}}
    response = {"model_version": "v3", "items": [{"stock_code": "A", "score": 0.9}]}
    status, _ = _call(
        sink,
        "POST",
        "/",
        _binary("e1", REQUEST_TYPE, "2026-11-20T10:00:00+00:00"),
        json.dumps(request).encode(),
    )
    assert status == 202 and sink.logged == 0
    status, _ = _call(
        sink,
        "POST",
        "/",
        _binary("e1", RESPONSE_TYPE, "2026-11-20T10:00:00.250000+00:00"),
        json.dumps(response).encode(),
    )
    assert status == 202 and sink.logged == 1
    sink.logger.close()
    log = read_predictions(settings)
    row = log.iloc[0]
    assert (row["model"], row["model_version"], row["request_id"]) == ("recs", "v3", "e1")
    assert row["customer_id"] == "C42" and row["f.k"] == 10.0
    assert "f.nested" not in log and "f.customer_id" not in log
    assert row["latency_ms"] == pytest.approx(250.0)
    assert row["o.items.score"] == pytest.approx(0.9)


def test_structured_mode_and_v2_inputs(tmp_path: Path) -> None:
    """Structured CloudEvents with Open Inference Protocol inputs are understood too."""
    settings = Settings(home=tmp_path)
    sink = PayloadSink(PredictionLogger(settings, 1.0))
    req = {
        "id": "e2",
        "type": REQUEST_TYPE,
        "specversion": "1.0",
        "source": "demand",
        "inferenceservicename": "demand",
        "data": {
            "inputs": [
                {"name": "stock_code", "shape": [1], "datatype": "BYTES", "data": ["85123A"]}
            ]
        },
    }
    resp = {**req, "type": RESPONSE_TYPE, "data": {"outputs": [], "model_version": "1"}}
    headers = {"content-type": "application/cloudevents+json"}
    for event in (resp, req):  # the response may arrive first
        assert _call(sink, "POST", "/", headers, json.dumps(event).encode())[0] == 202
    sink.logger.close()
    log = read_predictions(settings)
    assert len(log) == 1 and log["f.stock_code"].iloc[0] == "85123A"


def test_health_and_bad_events(tmp_path: Path) -> None:
    """GET /healthz answers 200; a non-KServe event is a 400; GET / is a 405."""
    sink = PayloadSink(PredictionLogger(Settings(home=tmp_path), 1.0))
    assert _call(sink, "GET", "/healthz", {}, b"")[0] == 200
    assert _call(sink, "POST", "/", {"ce-id": "x", "ce-type": "other"}, b"{}")[0] == 400
    assert _call(sink, "GET", "/", {}, b"")[0] == 405
    sink.logger.close()


def test_unpaired_events_are_bounded(tmp_path: Path) -> None:
    """Requests whose response never comes are dropped oldest first past max_pending."""
    sink = PayloadSink(PredictionLogger(Settings(home=tmp_path), 1.0), max_pending=3)
    for i in range(5):
        sink.handle_event(_binary(f"e{i}", REQUEST_TYPE, "2026-11-20T10:00:00+00:00"), b"{}")
    assert sink.dropped == 2
    sink.logger.close()
