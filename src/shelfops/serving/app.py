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
from dataclasses import dataclass
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

V2_MAX_DIMS = 2
"""Most dimensions of one V2 input tensor (both models read vectors); more is a 400."""
V2_DATATYPES: tuple[str, ...] = (
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
)
_V2_SCALAR: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
}
_V2_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": _V2_SCALAR,
    "description": "V2 parameters: each value a string, number or boolean.",
}


@dataclass(frozen=True)
class V2Limits:
    """What the V2 route of one server accepts; documented in OpenAPI and enforced with a 4xx.

    Attributes:
        inputs: The input tensor names the model reads (its V2 metadata); others are a 422.
        outputs: The output tensor names it returns; asking for another is a 422.
        max_batch: Most values in one tensor (``SHELFOPS_SERVING_MAX_BATCH``); more is a 413.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_batch: int

    @classmethod
    def of(cls, server: ModelServer) -> V2Limits:
        """The limits of ``server``, read from its V2 metadata and serving settings."""
        meta = server.v2_metadata()
        return cls(
            inputs=tuple(t["name"] for t in meta["inputs"]),
            outputs=tuple(t["name"] for t in meta["outputs"]),
            max_batch=server.serving.max_batch,
        )

    def openapi(self) -> dict[str, Any]:
        """The V2 inference request body in OpenAPI (the route reads the raw body).

        Tensors named as the model's metadata names them, each name at most once, at most
        :data:`V2_MAX_DIMS` dimensions and ``max_batch`` values, data flattened in row-major
        order (nested lists are accepted too), parameter values scalars as the protocol says.
        """
        tensor = {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"type": "string", "enum": list(self.inputs)},
                "shape": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "maxItems": V2_MAX_DIMS,
                },
                "datatype": {"type": "string", "enum": list(V2_DATATYPES)},
                "parameters": _V2_PARAMETERS,
                "data": {"type": "array", "items": _V2_SCALAR, "maxItems": self.max_batch},
            },
        }
        output = {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "enum": list(self.outputs)},
                "parameters": _V2_PARAMETERS,
            },
        }
        body = {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": _V2_PARAMETERS,
                "inputs": {"type": "array", "items": tensor, "maxItems": len(self.inputs)},
                "outputs": {"type": "array", "items": output, "maxItems": len(self.outputs)},
            },
        }
        return {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}}
        }


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


_DEGRADED = (DEGRADED_HEADER.lower().encode(), b"true")
"""The degraded header as a response carries it (Starlette lowercases header names)."""


class _Observe:
    """Pure ASGI middleware: times requests, labels outcomes, stamps the version header.

    ``direct`` maps ``(method, path)`` to an ASGI app called straight from here instead of
    through FastAPI's router, exception middleware and dependency solving: the V2 inference
    route of the served model, whose handler reads the raw body itself (a profile under load
    had FastAPI's layers at about 7% of the worker's request CPU, see docs/benchmarks.md).
    """

    def __init__(
        self,
        app: ASGIApp,
        server: ModelServer,
        direct: dict[tuple[str, str], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.server = server
        self.endpoints = set(prediction_paths(server.name))
        self.direct = direct or {}

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
                status["degraded"] = _DEGRADED in headers
                headers.append((VERSION_HEADER.encode(), version))
                message["headers"] = headers
            await send(message)

        app = self.direct.get((scope.get("method", ""), path), self.app)
        try:
            await app(scope, receive, send_wrapper)
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


def _scalar_parameters(value: Any, where: str) -> None:
    """Check a V2 ``parameters`` object: scalar values only (the protocol's rule)."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}'parameters' must be an object")
    for key, item in value.items():
        if not isinstance(item, _V2_SCALARS):
            raise ValueError(f"{where}parameter {key!r} must be a string, number or boolean")


def _named_once(items: list[Any], known: tuple[str, ...], kind: str) -> None:
    """Each tensor name is one the model knows, and appears once (a 422 otherwise)."""
    seen: set[str] = set()
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"every {kind} needs a string 'name'")
        if name not in known:
            raise BadRequest(f"unknown {kind} {name!r}; this model has {', '.join(known)}")
        if name in seen:
            raise BadRequest(f"{kind} {name!r} appears more than once")
        seen.add(name)


def _check_v2_shape(
    header: bytes, limits: V2Limits, binary_bytes: int = 0
) -> tuple[str | None, V2Inputs | None]:
    """Parse and check the JSON part of a V2 request (kserve's parser trusts the structure).

    Args:
        header: The JSON part of the body.
        limits: What the route accepts.
        binary_bytes: How many bytes follow the JSON part (the binary extension's tensor data):
            the inputs' ``binary_data_size`` parameters must add up to exactly that.

    Returns:
        The request ``id`` and the inputs (``None`` when a tensor's data follows the JSON part
        in the binary extension: kserve parses that request).

    Raises:
        BadRequest: An unknown or repeated tensor name (422), or a tensor with more than
            ``limits.max_batch`` values (413).
        ValueError: Not an object with a list of named tensors whose data fits their shape,
            as :meth:`V2Limits.openapi` documents (a 400).
    """
    doc = orjson.loads(header)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise ValueError("the body must be a JSON object with an 'inputs' list")
    if "parameters" in doc:
        _scalar_parameters(doc["parameters"], "")
    if "id" in doc and not isinstance(doc["id"], str):
        raise ValueError("'id' must be a string")
    outputs = doc.get("outputs", [])
    if not isinstance(outputs, list):
        raise ValueError("'outputs' must be a list of objects with a 'name'")
    _named_once(outputs, limits.outputs, "output")
    for output in outputs:
        if "parameters" in output:
            _scalar_parameters(output["parameters"], f"output {output['name']!r}: ")
    _named_once(doc["inputs"], limits.inputs, "input")
    inputs: V2Inputs | None = {}
    for tensor in doc["inputs"]:
        name, shape = tensor["name"], tensor.get("shape")
        if tensor.get("datatype") not in V2_DATATYPES:
            raise ValueError(f"input {name!r}: 'datatype' must be one of {', '.join(V2_DATATYPES)}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"input {name!r}: 'shape' must be a list of non-negative integers")
        if len(shape) > V2_MAX_DIMS:
            raise ValueError(f"input {name!r}: at most {V2_MAX_DIMS} dimensions, got {shape}")
        if "parameters" in tensor:
            _scalar_parameters(tensor["parameters"], f"input {name!r}: ")
        data = tensor.get("data")
        if data is None:  # binary extension: kserve reads the data, sized here
            size = tensor.get("parameters", {}).get("binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"input {name!r} needs 'data' or a 'binary_data_size' parameter")
            binary_bytes -= size
            inputs = None
            continue
        flat = np.ravel(np.asarray(data, dtype=object)) if isinstance(data, list) else None
        if flat is None or not all(isinstance(v, _V2_SCALARS) for v in flat):
            raise ValueError(f"input {name!r}: 'data' must be a (nested) list of scalars")
        if len(flat) > limits.max_batch:
            raise BadRequest(f"input {name!r}: {len(flat)} values, at most {limits.max_batch}", 413)
        if len(flat) != int(np.prod(shape)):
            raise ValueError(f"input {name!r}: {len(flat)} values do not fit shape {shape}")
        if inputs is not None:
            inputs[name] = flat.tolist()
    if binary_bytes:
        raise ValueError(
            "the inputs' binary_data_size parameters do not add up to the bytes after the JSON part"
        )
    return doc.get("id"), inputs


V2Inputs = dict[str, list[Any]]
"""The input tensors of one V2 request: name to its values, flattened in row-major order."""


@dataclass(frozen=True)
class V2Tensor:
    """One output tensor of a V2 response (``data`` flattened in row-major order)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | np.ndarray


@dataclass(frozen=True)
class V2Answer:
    """What a V2 handler returns: the response's tensors, its id and whether it is degraded."""

    request_id: str
    outputs: list[V2Tensor]
    degraded: bool

    def to_json(self, model_name: str, model_version: str) -> bytes:
        """The V2 REST response document, encoded once by orjson (numpy data included)."""
        return orjson.dumps(
            {
                "model_name": model_name,
                "model_version": model_version,
                "id": self.request_id,
                "parameters": {"degraded": self.degraded},
                "outputs": [
                    {"name": t.name, "shape": t.shape, "datatype": t.datatype, "data": t.data}
                    for t in self.outputs
                ],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


def _strings(inputs: V2Inputs, name: str) -> list[str]:
    """The values of a required BYTES input, as text."""
    values = inputs.get(name)
    if values is None:
        raise BadRequest(f"the V2 request needs an input named {name!r} (BYTES, shape [n])")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _one(values: list[Any]) -> Any:
    """The value of an input holding exactly one (as a Python scalar), else None."""
    value = values[0] if len(values) == 1 else None
    return value.item() if isinstance(value, np.generic) else value


def _one_int(inputs: V2Inputs, name: str, default: int) -> int:
    """An optional input holding exactly one integer."""
    values = inputs.get(name)
    if values is None:
        return default
    value = _one(values)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{name!r} must be one integer")
    return value


def _one_bool(inputs: V2Inputs, name: str) -> bool:
    """An optional input holding exactly one boolean (false when absent)."""
    values = inputs.get(name)
    if values is None:
        return False
    value = _one(values)
    if not isinstance(value, bool):
        raise BadRequest(f"{name!r} must be one boolean (BOOL, shape [1])")
    return value


def v2_inputs(infer: Any) -> V2Inputs:
    """The inputs of a parsed kserve ``InferRequest`` (binary extension, the stock peer)."""
    return {t.name: np.ravel(t.data).tolist() for t in infer.inputs}


def v2_recs_infer(
    server: Any, inputs: V2Inputs, request_id: str | None, synthetic: bool
) -> V2Answer:
    """Recommendations for a V2 request: one row of k items per ``customer_id`` value.

    Raises:
        BadRequest: Missing or bad ``customer_id``, ``k`` or ``discover`` (the message says which).
    """
    ids = _strings(inputs, "customer_id")
    if not ids or len(ids) > server.serving.max_batch:
        raise BadRequest(
            f"'customer_id' must hold 1 to {server.serving.max_batch} ids, got {len(ids)}", 413
        )
    for c in ids:
        if not c.strip() or len(c) > 64:
            raise BadRequest(f"customer ids must be 1 to 64 characters, got {c[:80]!r}")
    ids = [c.strip() for c in ids]
    k = _one_int(inputs, "k", 10)
    if k < 1:
        raise BadRequest(f"'k' must be at least 1, got {k}")
    discover = _one_bool(inputs, "discover")
    rows = server.recommend_many(
        ids, k, request_id=request_id, synthetic=synthetic, discover=discover
    )
    width = max(len(r.items) for r in rows)
    pad = [""] * width

    def matrix(field: str) -> list[str]:
        return [v for r in rows for v in ([getattr(i, field) for i in r.items] + pad)[:width]]

    # V2 JSON cannot carry NaN: popularity picks (no model score) and padding score 0.
    scores = np.zeros((len(rows), width), np.float32)
    for n, r in enumerate(rows):
        scores[n, : len(r.items)] = [i.score or 0.0 for i in r.items]
    shape = [len(ids), width]
    return V2Answer(
        request_id=request_id or rows[0].request_id,
        outputs=[
            V2Tensor("stock_code", shape, "BYTES", matrix("stock_code")),
            V2Tensor("score", shape, "FP32", scores.ravel()),
            V2Tensor("reason", shape, "BYTES", matrix("reason")),
            V2Tensor("source", shape, "BYTES", matrix("source")),
        ],
        degraded=any(r.degraded for r in rows),
    )


def v2_demand_infer(
    server: Any, inputs: V2Inputs, request_id: str | None, synthetic: bool
) -> V2Answer:
    """Forecasts for a V2 request: P10/P50/P90 per ``stock_code`` value and week.

    Raises:
        BadRequest: Missing or bad ``stock_code`` or ``horizon`` (the message says which).
    """
    codes = _strings(inputs, "stock_code")
    horizon = _one_int(inputs, "horizon", server.horizon)
    if not codes:
        raise BadRequest("'stock_code' must hold at least one product code")
    try:
        request = ForecastRequest(stock_codes=codes, horizon=horizon)
    except ValidationError as exc:
        raise BadRequest(f"invalid request: {exc.errors()[0]['msg']}") from exc
    result = server.forecast(request, request_id, synthetic=synthetic)
    first: list[Any] = next((f.weeks for f in result.forecasts if f.weeks), [])
    week_starts = [w.week_start for w in first]
    h, n = len(week_starts), len(result.forecasts)

    def matrix(field: str) -> np.ndarray:
        out = np.zeros((n, h), np.float32)  # no_data rows stay 0
        for r, f in enumerate(result.forecasts):
            for c, w in enumerate(f.weeks):
                out[r, c] = getattr(w, field)
        return out.ravel()

    return V2Answer(
        request_id=request_id or result.request_id,
        outputs=[
            V2Tensor("week_start", [h], "BYTES", week_starts),
            V2Tensor("status", [n], "BYTES", [f.status for f in result.forecasts]),
            *(V2Tensor(q, [n, h], "FP32", matrix(q)) for q in ("p10", "p50", "p90")),
        ],
        degraded=result.degraded,
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
    v2_limits = V2Limits.of(server)
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

    async def v2_infer(body: bytes, json_length_header: str | None, synthetic: bool) -> Response:
        """V2 inference of the served model from the raw body (JSON or the binary extension)."""
        from kserve.errors import InferenceError, InvalidInput
        from kserve.protocol.infer_type import InferRequest

        if not server.ready:
            return not_ready()
        try:
            json_length = int(json_length_header) if json_length_header is not None else len(body)
            if not 0 <= json_length <= len(body):
                raise ValueError(f"{V2_JSON_LENGTH} must be 0 to {len(body)}, got {json_length}")
            request_id, inputs = _check_v2_shape(
                body[:json_length], v2_limits, len(body) - json_length
            )
            if inputs is None:  # tensors in the binary extension: kserve reads them
                inputs = v2_inputs(InferRequest.from_bytes(body, json_length, name))
        except BadRequest as exc:  # a tensor over the batch limit or an unknown name
            return _error(exc.status, str(exc))
        except (InvalidInput, InferenceError, ValueError, KeyError, TypeError) as exc:
            # kserve's parser says InferenceError for BYTES data that is not UTF-8
            return _error(400, f"not a V2 inference request: {exc}")
        handler = v2_recs_infer if name == "recs" else v2_demand_infer
        # BadRequest is its 4xx; anything else is a bug: a 500 with the request id (see
        # `_Observe`), never disguised as bad input.
        try:
            answer = await _predict(server, handler, server, inputs, request_id, synthetic)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        return Response(
            answer.to_json(name, server.version),
            media_type="application/json",
            headers={DEGRADED_HEADER: "true" if answer.degraded else "false"},
        )

    async def v2_infer_direct(scope: Scope, receive: Receive, send: Send) -> None:
        """The served model's V2 route as a plain ASGI app (see `_Observe`)."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        found = {k: v for k, v in reversed(scope.get("headers") or [])}  # first one wins
        length = found.get(V2_JSON_LENGTH.encode())
        synthetic = found.get(SYNTHETIC_HEADER.lower().encode(), b"").lower()
        response = await v2_infer(
            b"".join(chunks),
            length.decode("latin-1") if length is not None else None,
            synthetic in (b"1", b"true", b"yes"),
        )
        await response(scope, receive, send)

    @app.post(
        "/v2/models/{model}/infer",
        tags=["v2"],
        responses=ERRORS,
        openapi_extra=v2_limits.openapi(),
    )
    async def infer(model: str, request: Request) -> Response:
        """V2 inference (JSON, or the binary tensor extension).

        The served model's own name is answered by ``v2_infer_direct`` before FastAPI routes
        the request; this route documents the operation and answers other names with a 404.
        """
        if model != name:
            return unknown(model)
        body = await request.body()
        length = request.headers.get(V2_JSON_LENGTH)
        return await v2_infer(body, length, is_synthetic(request))

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

    direct: dict[tuple[str, str], ASGIApp] = {("POST", f"/v2/models/{name}/infer"): v2_infer_direct}
    app.add_middleware(_Observe, server=server, direct=direct)
    return app
