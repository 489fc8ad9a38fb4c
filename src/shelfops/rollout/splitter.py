"""Local traffic splitter: one stable endpoint per model that honours the canary percentage.

A small Starlette app on loopback forwards every request to one revision (``bentoml serve`` on
its own port), picked at random by weight, the way KServe splits traffic between the ``prev`` and
``latest`` revisions. The routing table lives in a JSON file written by the local backend;
``POST /_shelfops/reload`` swaps it in atomically (one assignment of an immutable tuple), so a
request always sees either the old or the new table, never half of each. In-flight requests per
revision are counted so the backend can drain a revision before stopping it. A revision that
refuses the connection or drops it without an answer (stopped, crashed, killed mid-request) is
skipped and the request goes to the next one.

Run it with ``python -m shelfops.rollout.splitter --model recs --port 3100 --routes FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

ADMIN_PREFIX = "/_shelfops"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}


@dataclass(frozen=True)
class Route:
    """One upstream revision and its traffic weight (percent)."""

    version: str
    url: str
    weight: int


def read_routes(path: Path) -> tuple[Route, ...]:
    """Read a routes file (``{"routes": [{"version", "url", "weight"}]}``); empty if absent."""
    if not path.is_file():
        return ()
    data = json.loads(path.read_text())
    return tuple(Route(str(r["version"]), str(r["url"]), int(r["weight"])) for r in data["routes"])


def order_candidates(routes: Sequence[Route], rng: random.Random) -> list[Route]:
    """Upstreams to try, in order: one picked by weight, then other weighted, then the rest.

    Args:
        routes: The routing table.
        rng: Random source.

    Returns:
        Every route once; weight-0 routes only serve as a last resort when the weighted ones
        refuse connections.
    """
    weighted = [r for r in routes if r.weight > 0]
    spare = [r for r in routes if r.weight <= 0]
    if not weighted:
        return spare
    first = rng.choices(weighted, weights=[r.weight for r in weighted], k=1)[0]
    return [first, *(r for r in weighted if r is not first), *spare]


class Splitter:
    """The routing table, in-flight counters and the proxy logic.

    Args:
        model: Model name (for messages).
        routes_file: JSON routes file the backend writes.
        timeout_s: Upstream request timeout.
    """

    def __init__(self, model: str, routes_file: Path, timeout_s: float = 60.0) -> None:
        self.model = model
        self.routes_file = routes_file
        self.timeout_s = timeout_s
        self.routes: tuple[Route, ...] = read_routes(routes_file)
        self.inflight: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self.rng = random.Random()
        self._client: httpx.AsyncClient | None = None

    def reload(self) -> tuple[Route, ...]:
        """Swap in the routes file's table (one atomic assignment)."""
        self.routes = read_routes(self.routes_file)
        return self.routes

    def snapshot(self) -> dict[str, Any]:
        """Routes with in-flight and served counts (admin endpoint)."""
        return {
            "model": self.model,
            "routes": [r.__dict__ for r in self.routes],
            "inflight": dict(self.inflight),
            "served": dict(self.served),
        }

    async def client(self) -> httpx.AsyncClient:
        """The shared upstream HTTP client."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._client

    async def forward(self, request: Request) -> Response:
        """Proxy one request to a revision chosen by weight."""
        import httpx
        from starlette.responses import JSONResponse, Response

        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        path = request.url.path
        if request.url.query:
            path += "?" + request.url.query
        client = await self.client()
        candidates = order_candidates(self.routes, self.rng)
        last_error = "no revision is routed"
        for route in candidates:
            self.inflight[route.version] = self.inflight.get(route.version, 0) + 1
            try:
                upstream = await client.request(
                    request.method, route.url.rstrip("/") + path, content=body, headers=headers
                )
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # No answer from the revision: it refused the connection (stopped, restarting)
                # or died mid-request (connection reset). Predictions change nothing, so the
                # request goes to the next revision instead of failing the client.
                last_error = f"{route.version}: {exc.__class__.__name__}"
                continue
            finally:
                self.inflight[route.version] -= 1
            self.served[route.version] = self.served.get(route.version, 0) + 1
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            out_headers["X-ShelfOps-Revision"] = route.version
            return Response(upstream.content, upstream.status_code, headers=out_headers)
        return JSONResponse(
            {"detail": f"no revision of {self.model} answered ({last_error})"}, status_code=503
        )


def build_app(splitter: Splitter) -> Starlette:
    """The Starlette app: admin routes under ``/_shelfops``, everything else proxied."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route as StarletteRoute

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "model": splitter.model})

    async def routes(_: Request) -> Response:
        return JSONResponse(splitter.snapshot())

    async def reload(_: Request) -> Response:
        try:
            splitter.reload()
        except (OSError, ValueError, KeyError) as exc:
            return JSONResponse({"detail": f"bad routes file: {exc}"}, status_code=400)
        return JSONResponse(splitter.snapshot())

    async def proxy(request: Request) -> Response:
        return await splitter.forward(request)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Importing httpx and building the client (its TLS context) took about 140 ms, which
        # the first request after a start paid; the splitter pays it before it listens.
        await splitter.client()
        yield
        if splitter._client is not None:
            await splitter._client.aclose()

    return Starlette(
        routes=[
            StarletteRoute(f"{ADMIN_PREFIX}/health", health, methods=["GET"]),
            StarletteRoute(f"{ADMIN_PREFIX}/routes", routes, methods=["GET"]),
            StarletteRoute(f"{ADMIN_PREFIX}/reload", reload, methods=["POST"]),
            StarletteRoute("/{path:path}", proxy, methods=methods),
        ],
        lifespan=lifespan,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the splitter on loopback (entry point of ``python -m shelfops.rollout.splitter``)."""
    import uvicorn

    parser = argparse.ArgumentParser(description="ShelfOps local traffic splitter")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--port", type=int, required=True, help="port of the stable endpoint")
    parser.add_argument("--routes", type=Path, required=True, help="routes JSON file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    args = parser.parse_args(argv)
    app = build_app(Splitter(args.model, args.routes))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
