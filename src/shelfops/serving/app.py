"""The HTTP face of a model server: KServe V2 (Open Inference Protocol) plus friendly JSON.

:func:`create_app` builds a FastAPI app around a :class:`~shelfops.serving.base.ModelServer`.
The BentoML services in ``serving/`` mount it; tests call it in process. Every response carries
``X-ShelfOps-Model-Version``; every bad request gets a 4xx JSON body ``{"error": ...}`` (the V2
protocol's error shape), never a 5xx.

Routes (``{name}`` is the server's model name, ``recs`` or ``demand``):

* ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``
* ``GET /v2/models/{name}``, ``GET /v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``
* ``POST /recommend`` (recs) or ``POST /forecast`` (demand)
* ``POST /feedback``: what customers did with recommendations, actual sales for forecasts
* ``GET /metrics`` (Prometheus; the services turn BentoML's own metrics off, so under
  ``bentoml serve`` this route answers too)

Prediction routes run the (millisecond, CPU-bound) prediction on the event loop and encode
responses once (pydantic-core or orjson): see :func:`_predict` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from shelfops.monitoring.store import FeedbackEvent, FeedbackStore
from shelfops.serving.base import BadRequest, ModelServer
from shelfops.serving.headers import (
    DEGRADED_HEADER,
    REQUEST_ID_HEADER,
    SYNTHETIC_HEADER,
    VERSION_HEADER,
)
from shelfops.serving.schemas import (
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    RecommendRequest,
    RecommendResponse,
)

log = logging.getLogger(__name__)

V2_JSON_LENGTH = "inference-header-content-length"
MAX_BODY_BYTES = 1_000_000
"""Larger request bodies get a 413 before they are parsed."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

V2_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
V2_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": V2_TENSOR},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                }
            }
        },
    }
}
"""The V2 inference request in OpenAPI (the route reads the raw body; FastAPI cannot infer it)."""

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed body (not JSON, or not a V2 inference request)."),
        (404, "Unknown model name."),
        (413, "Body or batch too large."),
        (422, "Well-formed but invalid input; the message names the field."),
    )
}


def prediction_paths(name: str) -> list[str]:
    """The routes that serve predictions for model ``name`` (timed and counted per request)."""
    return ["/recommend" if name == "recs" else "/forecast", f"/v2/models/{name}/infer"]


def untraced_paths(name: str) -> str:
    """BentoML ``tracing.excluded_urls`` for a service: the prediction and health routes.

    BentoML's tracing samples nothing unless configured (sample rate 0), yet its middleware
    builds a span per request: about 7% of the serving worker's CPU under load in a py-spy
    profile (docs/benchmarks.md). ShelfOps exports no traces, so the hot routes skip it.
    """
    return ",".join([*prediction_paths(name), "/v2/health/"])


def is_synthetic(request: Request) -> bool:
    """Whether a request carries the synthetic-traffic marker (see :data:`SYNTHETIC_HEADER`)."""
    return request.headers.get(SYNTHETIC_HEADER, "").lower() in ("1", "true", "yes")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by orjson (numpy arrays included)."""
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _predict(server: ModelServer, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one prediction call of ``server``.

    A prediction is a short CPU-bound call (a millisecond or two), so it runs on the event
    loop, as stock ``kserve.ModelServer`` runs a synchronous ``predict``: requests take turns
    instead of thread-pool workers time-slicing the GIL, and there is no thread handoff. Only
    when the latency fault drill makes every prediction sleep does it go to a worker thread, so
    that health checks keep answering during the drill.
    """
    if server.serving.inject_latency_ms > 0:
        return await run_in_threadpool(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def _model_response(result: BaseModel, degraded: bool) -> Response:
    """A response model as JSON, serialized once by pydantic-core.

    The model was built by our own code from validated parts, so FastAPI's second validation
    and ``jsonable_encoder`` pass over it (a large share of a request's CPU) are skipped; the
    route's ``response_model`` still documents the shape.
    """
    return Response(
        result.model_dump_json(),
        media_type="application/json",
        headers={DEGRADED_HEADER: "true" if degraded else "false"},
    )


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status)


class _Observe:
    """Pure ASGI middleware: times requests, labels outcomes, stamps the version header."""

    def __init__(self, app: ASGIApp, server: ModelServer) -> None:
        self.app = app
        self.server = server
        self.endpoints = set(prediction_paths(server.name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            await _error(413, f"request body over {MAX_BODY_BYTES} bytes")(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500, "degraded": False}
        version = self.server.version.encode()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers", []))
                status["degraded"] = any(
                    k.lower() == DEGRADED_HEADER.lower().encode() and v == b"true"
                    for k, v in headers
                )
                headers.append((VERSION_HEADER.encode(), version))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # a bug, not bad input: a 500 naming the request id
            headers = dict(scope.get("headers") or [])
            rid = headers.get(REQUEST_ID_HEADER.lower().encode(), b"").decode() or uuid.uuid4().hex
            log.error("request %s to %s failed", rid, path, exc_info=exc)
            if "started" in status:
                raise  # the response is half sent: nothing sane is left to answer
            response = _error(500, f"internal error (request id {rid}); the server log has details")
            response.headers[REQUEST_ID_HEADER] = rid
            await response(scope, receive, send_wrapper)
        finally:
            if path in self.endpoints:
                code = int(status["code"])
                outcome = (
                    "error" if code >= 400 else "degraded" if status["degraded"] else "success"
                )
                self.server.observe(path, outcome, time.perf_counter() - started)


_V2_SCALARS = (str, int, float, bool)


def _check_v2_shape(header: bytes) -> None:
    """Check the JSON part of a V2 request before kserve parses it (it trusts the structure).

    Raises:
        ValueError: Not an object with a list of named tensors whose data fits their shape.
    """
    import orjson

    doc = orjson.loads(header)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise ValueError("the body must be a JSON object with an 'inputs' list")
    if "parameters" in doc and not isinstance(doc["parameters"], dict):
        raise ValueError("'parameters' must be an object")
    if "id" in doc and not isinstance(doc["id"], str):
        raise ValueError("'id' must be a string")
    for i, tensor in enumerate(doc["inputs"]):
        if not isinstance(tensor, dict):
            raise ValueError(f"inputs[{i}] must be an object with name, shape, datatype, data")
        name, shape = tensor.get("name"), tensor.get("shape")
        if not isinstance(name, str) or not isinstance(tensor.get("datatype"), str):
            raise ValueError(f"inputs[{i}] needs a string 'name' and 'datatype'")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"input {name!r}: 'shape' must be a list of non-negative integers")
        if "parameters" in tensor and not isinstance(tensor["parameters"], dict):
            raise ValueError(f"input {name!r}: 'parameters' must be an object")
        data = tensor.get("data")
        if data is None:
            continue  # binary extension: kserve checks binary_data_size
        flat = np.ravel(np.asarray(data, dtype=object)) if isinstance(data, list) else None
        if flat is None or not all(isinstance(v, _V2_SCALARS) for v in flat):
            raise ValueError(f"input {name!r}: 'data' must be a (nested) list of scalars")
        if len(flat) != int(np.prod(shape)):
            raise ValueError(f"input {name!r}: {len(flat)} values do not fit shape {shape}")


def _strings(infer: Any, name: str) -> list[str]:
    """The values of a required BYTES input, as text."""
    tensor = infer.get_input_by_name(name)
    if tensor is None:
        raise BadRequest(f"the V2 request needs an input named {name!r} (BYTES, shape [n])")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(tensor.data)]


def _one_int(infer: Any, name: str, default: int) -> int:
    """An optional input holding exactly one integer."""
    tensor = infer.get_input_by_name(name)
    if tensor is None:
        return default
    values = np.ravel(tensor.data)
    if len(values) != 1 or not float(values[0]).is_integer():
        raise BadRequest(f"{name!r} must be one integer")
    return int(values[0])


def _v2_recs_infer(server: Any, infer: Any, synthetic: bool) -> Any:
    from kserve.protocol.infer_type import InferOutput, InferResponse

    ids = _strings(infer, "customer_id")
    if not ids or len(ids) > server.serving.max_batch:
        raise BadRequest(
            f"'customer_id' must hold 1 to {server.serving.max_batch} ids, got {len(ids)}", 413
        )
    for c in ids:
        if not c.strip() or len(c) > 64:
            raise BadRequest(f"customer ids must be 1 to 64 characters, got {c[:80]!r}")
    ids = [c.strip() for c in ids]
    k = _one_int(infer, "k", 10)
    if k < 1:
        raise BadRequest(f"'k' must be at least 1, got {k}")
    rows = server.recommend_many(ids, k, request_id=infer.id, synthetic=synthetic)
    width = max(len(r.items) for r in rows)
    pad = [""] * width

    def matrix(field: str) -> list[str]:
        return [v for r in rows for v in ([getattr(i, field) for i in r.items] + pad)[:width]]

    # V2 JSON cannot carry NaN: popularity picks (no model score) and padding score 0.
    scores = np.zeros((len(rows), width), np.float32)
    for n, r in enumerate(rows):
        scores[n, : len(r.items)] = [i.score or 0.0 for i in r.items]
    degraded = any(r.degraded for r in rows)
    outputs = [
        InferOutput("stock_code", [len(ids), width], "BYTES", data=matrix("stock_code")),
        InferOutput("score", [len(ids), width], "FP32", data=scores),
        InferOutput("reason", [len(ids), width], "BYTES", data=matrix("reason")),
        InferOutput("source", [len(ids), width], "BYTES", data=matrix("source")),
    ]
    return (
        InferResponse(
            response_id=infer.id or rows[0].request_id,
            model_name=server.name,
            model_version=server.version,
            infer_outputs=outputs,
            parameters={"degraded": degraded},
        ),
        degraded,
    )


def _v2_demand_infer(server: Any, infer: Any, synthetic: bool) -> Any:
    from kserve.protocol.infer_type import InferOutput, InferResponse

    codes = _strings(infer, "stock_code")
    horizon = _one_int(infer, "horizon", server.horizon)
    if not codes:
        raise BadRequest("'stock_code' must hold at least one product code")
    try:
        request = ForecastRequest(stock_codes=codes, horizon=horizon)
    except ValidationError as exc:
        raise BadRequest(f"invalid request: {exc.errors()[0]['msg']}") from exc
    result = server.forecast(request, infer.id, synthetic=synthetic)
    first: list[Any] = next((f.weeks for f in result.forecasts if f.weeks), [])
    week_starts = [w.week_start for w in first]
    h = len(week_starts)

    def matrix(field: str) -> np.ndarray:
        out = np.zeros((len(result.forecasts), h), np.float32)  # no_data rows stay 0
        for r, f in enumerate(result.forecasts):
            for c, w in enumerate(f.weeks):
                out[r, c] = getattr(w, field)
        return out

    outputs = [
        InferOutput("week_start", [h], "BYTES", data=week_starts),
        InferOutput(
            "status", [len(result.forecasts)], "BYTES", data=[f.status for f in result.forecasts]
        ),
        *(
            InferOutput(q, [len(result.forecasts), h], "FP32", data=matrix(q))
            for q in ("p10", "p50", "p90")
        ),
    ]
    return (
        InferResponse(
            response_id=infer.id or result.request_id,
            model_name=server.name,
            model_version=server.version,
            infer_outputs=outputs,
            parameters={"degraded": result.degraded},
        ),
        result.degraded,
    )


def create_app(server: ModelServer) -> FastAPI:
    """Build the HTTP app for one model server.

    Args:
        server: A :class:`RecsServer` or :class:`DemandServer` (loaded now or later: readiness
            follows ``server.ready``).

    Returns:
        The FastAPI app (its OpenAPI schema documents the friendly endpoints).
    """
    name = server.name
    app = FastAPI(
        title=f"ShelfOps {name}",
        description="KServe V2 Open Inference Protocol plus friendly JSON endpoints.",
        version="1",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "the body is not valid JSON")
        details = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "problem": e["msg"],
            }
            for e in errors
        ]
        summary = "; ".join(f"{d['field'] or 'body'}: {d['problem']}" for d in details)
        return _error(422, f"invalid request: {summary}", details)

    @app.exception_handler(BadRequest)
    async def bad(_: Request, exc: BadRequest) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    def not_ready() -> JSONResponse:
        return JSONResponse({"name": name, "ready": False}, status_code=503)

    def unknown(model: str) -> JSONResponse:
        return _error(404, f"unknown model {model!r}; this server serves {name!r}")

    @app.get("/v2/health/live", tags=["v2"])
    async def live() -> dict[str, bool]:
        """The process is up."""
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"], responses={503: {"description": "Not ready"}})
    async def ready() -> Response:
        """The model is loaded and may take traffic."""
        return JSONResponse({"ready": True}) if server.ready else not_ready()

    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> dict[str, Any]:
        """V2 server metadata."""
        return {"name": f"shelfops-{name}", "version": "1", "extensions": []}

    @app.get("/v2/models/{model}", tags=["v2"], responses=ERRORS)
    async def model_metadata(model: str) -> Response:
        """V2 model metadata."""
        if model != name:
            return unknown(model)
        if not server.loaded:
            return not_ready()
        return JSONResponse(server.v2_metadata())

    @app.get("/v2/models/{model}/ready", tags=["v2"], responses=ERRORS)
    async def model_ready(model: str) -> Response:
        """V2 model readiness."""
        if model != name:
            return unknown(model)
        return JSONResponse({"name": name, "ready": True}) if server.ready else not_ready()

    @app.post("/v2/models/{model}/infer", tags=["v2"], responses=ERRORS, openapi_extra=V2_REQUEST)
    async def infer(model: str, request: Request) -> Response:
        """V2 inference (JSON, or the binary tensor extension)."""
        from kserve.errors import InvalidInput
        from kserve.protocol.infer_type import InferRequest

        if model != name:
            return unknown(model)
        if not server.ready:
            return not_ready()
        body = await request.body()
        length = request.headers.get(V2_JSON_LENGTH)
        try:
            json_length = int(length) if length is not None else len(body)
            _check_v2_shape(body[:json_length])
            parsed = InferRequest.from_bytes(body, json_length, name)
        except (InvalidInput, ValueError, KeyError, TypeError) as exc:
            return _error(400, f"not a V2 inference request: {exc}")
        handler = _v2_recs_infer if name == "recs" else _v2_demand_infer
        # BadRequest becomes its 4xx (exception handler); anything else is a bug: a 500 with
        # the request id (see `_Observe`), never disguised as bad input.
        result, degraded = await _predict(server, handler, server, parsed, is_synthetic(request))
        payload, json_len = result.to_rest()
        headers = {DEGRADED_HEADER: "true" if degraded else "false"}
        if json_len is not None:
            headers[V2_JSON_LENGTH] = str(json_len)
            return Response(payload, media_type="application/octet-stream", headers=headers)
        return _json(payload, headers=headers)

    async def friendly(predict: Callable[..., Any], req: BaseModel, request: Request) -> Response:
        """Run a friendly-JSON prediction: readiness, request id, synthetic marker, response."""
        if not server.ready:
            raise BadRequest("the model is still loading; retry shortly", 503)
        result = await _predict(
            server,
            predict,
            req,
            request.headers.get(REQUEST_ID_HEADER),
            synthetic=is_synthetic(request),
        )
        return _model_response(result, result.degraded)

    if name == "recs":

        @app.post(
            "/recommend", tags=["friendly"], responses=ERRORS, response_model=RecommendResponse
        )
        async def recommend(req: RecommendRequest, request: Request) -> Response:
            """Top-k items for a customer, each with a reason."""
            return await friendly(server.recommend, req, request)  # type: ignore[attr-defined]

    else:

        @app.post("/forecast", tags=["friendly"], responses=ERRORS, response_model=ForecastResponse)
        async def forecast(req: ForecastRequest, request: Request) -> Response:
            """P10/P50/P90 per product per week."""
            return await friendly(server.forecast, req, request)  # type: ignore[attr-defined]

    @app.post("/feedback", tags=["friendly"], responses=ERRORS)
    def feedback(
        events: Annotated[list[FeedbackEvent], Body(max_length=1000)], request: Request
    ) -> dict[str, int]:
        """Record what customers did with recommendations, or actual sales for forecasts.

        Synthetic traffic (``X-ShelfOps-Synthetic: true``) is validated but not recorded.
        """
        if is_synthetic(request):
            return {"recorded": 0}
        return {"recorded": FeedbackStore(server.settings).record(events)}

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        """Prometheus metrics of this server."""
        return Response(generate_latest(server.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Observe, server=server)
    return app
