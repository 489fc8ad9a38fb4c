"""The payload-logger sink: KServe CloudEvents in, prediction-log records out.

KServe's payload logger (``spec.predictor.logger`` with ``mode: all``) POSTs two CloudEvents per
inference to this service: the request (type ``org.kubeflow.serving.inference.request``) and the
response (``...inference.response``), sharing one ``ce-id``. :class:`PayloadSink` pairs them and
writes one record through :class:`~shelfops.monitoring.store.PredictionLogger`, so the cluster
profile stores exactly what the local profile stores. Binary mode (``ce-*`` headers, JSON body)
and structured mode (``application/cloudevents+json``) are both accepted.

What is kept from a request: ``customer_id`` (the only personal field) and flat scalar fields as
model inputs (friendly JSON bodies, or Open Inference Protocol inputs with one value). Nested or
list values are not logged. The response body is logged as the outputs.

Run it with ``shelfops monitor sink --port 8080`` (uvicorn). It is a plain ASGI app: no
framework, ``GET /healthz`` for probes, ``POST /`` for events.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from shelfops.monitoring.store import PredictionLogger

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
ID_FIELDS = ("customer_id", "customerId", "customer")
MAX_BODY = 4 * 1024 * 1024


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def request_fields(body: Any) -> tuple[str | None, dict[str, Any]]:
    """Customer id and flat scalar inputs of a request body.

    Args:
        body: The parsed request (friendly JSON or Open Inference Protocol V2).

    Returns:
        ``(customer_id, features)``.
    """
    features: dict[str, Any] = {}
    if not isinstance(body, Mapping):
        return None, features
    flat: dict[str, Any] = dict(body)
    if isinstance(body.get("inputs"), list):  # V2: [{"name", "shape", "datatype", "data"}]
        for tensor in body["inputs"]:
            if not isinstance(tensor, Mapping):
                continue
            data = tensor.get("data")
            if isinstance(data, list) and len(data) == 1:
                data = data[0]
            if "name" in tensor:
                flat[str(tensor["name"])] = data
    customer = None
    for key in ID_FIELDS:
        value = flat.pop(key, None)
        if isinstance(value, str | int) and not isinstance(value, bool):
            customer = str(value)
            break
    for key, value in flat.items():
        if isinstance(value, bool | int | float | str) and key not in ("id", "inputs"):
            features[key] = value
    return customer, features


class PayloadSink:
    """ASGI app pairing KServe request/response CloudEvents into prediction-log records."""

    def __init__(self, logger: PredictionLogger, max_pending: int = 10_000) -> None:
        """Create the sink.

        Args:
            logger: Where records go (its sample rate applies).
            max_pending: Unpaired events kept in memory before the oldest are dropped.
        """
        self.logger = logger
        self.max_pending = max_pending
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.received = 0
        self.logged = 0
        self.dropped = 0

    def handle_event(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Accept one CloudEvent; log a record when its pair is complete.

        Args:
            headers: HTTP headers, lower-case names.
            body: The raw body.

        Returns:
            True if the event was understood.
        """
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        data = _json(body)
        if headers.get("content-type", "").startswith("application/cloudevents+json"):
            if not isinstance(data, Mapping):
                return False
            attrs = {str(k): str(v) for k, v in data.items() if k not in ("data", "data_base64")}
            data = data.get("data")
        event_id, kind = attrs.get("id"), attrs.get("type", "")
        if not event_id or kind not in (REQUEST_TYPE, RESPONSE_TYPE):
            return False
        self.received += 1
        part = "request" if kind == REQUEST_TYPE else "response"
        with self._lock:
            entry = self._pending.pop(event_id, {})
            entry[part] = (data, attrs)
            if "request" not in entry or "response" not in entry:
                self._pending[event_id] = entry
                while len(self._pending) > self.max_pending:
                    self._pending.popitem(last=False)
                    self.dropped += 1
                return True
        self._log(event_id, entry)
        return True

    def _log(self, event_id: str, entry: dict[str, Any]) -> None:
        req, req_attrs = entry["request"]
        resp, resp_attrs = entry["response"]
        customer, features = request_fields(req)
        outputs = resp if isinstance(resp, Mapping) else {"response": resp}
        model = req_attrs.get("inferenceservicename") or req_attrs.get("source") or "unknown"
        version = str(outputs.get("model_version") or resp_attrs.get("modelversion") or "")
        latency = 0.0
        try:
            t0 = dt.datetime.fromisoformat(req_attrs["time"])
            t1 = dt.datetime.fromisoformat(resp_attrs["time"])
            latency = max((t1 - t0).total_seconds() * 1000.0, 0.0)
        except (KeyError, ValueError):
            pass
        if self.logger.log(
            model=str(model),
            model_version=version,
            request_id=event_id,
            customer_id=customer,
            features=features,
            outputs=outputs,
            degraded=bool(outputs.get("degraded", False)),
            latency_ms=latency,
        ):
            self.logged += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.logger.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        if method == "GET" and path in ("/healthz", "/ready"):
            await _respond(send, 200, {"status": "ok", "logged": self.logged})
            return
        if method != "POST":
            await _respond(send, 405, {"error": "POST CloudEvents to /"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _respond(send, 413, {"error": "event larger than 4 MiB"})
                return
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.handle_event(headers, body):
            await _respond(send, 202, {"accepted": True})
        else:
            await _respond(
                send, 400, {"error": "not a KServe inference request/response CloudEvent"}
            )


async def _respond(send: Send, status: int, payload: Mapping[str, Any]) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
