"""The local traffic splitter: weighted choice, atomic reload, drain counters, failover."""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.testclient import TestClient

from shelfops.rollout.processes import free_port
from shelfops.rollout.splitter import Route, Splitter, build_app, order_candidates

pytestmark = pytest.mark.unit


def _upstream(name: str) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "served_by": name,
                "path": request.url.path,
                "query": request.url.query,
                "body": body.decode(),
            },
            headers={"X-ShelfOps-Model-Version": name},
        )

    return Starlette(routes=[StarletteRoute("/{p:path}", echo, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    """Two stand-in revisions (a, b) served by uvicorn on loopback."""
    servers, urls = [], {}
    for name in ("a", "b"):
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(_upstream(name), host="127.0.0.1", port=port, log_level="error")
        )
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not all(s.started for s in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield urls
    for server in servers:
        server.should_exit = True


def _write(path: Path, routes: list[tuple[str, str, int]]) -> None:
    path.write_text(
        json.dumps({"routes": [{"version": v, "url": u, "weight": w} for v, u, w in routes]})
    )


def test_weighted_choice_follows_the_percentages() -> None:
    """With 90/10 weights about a tenth of requests go first to the canary; 0 never goes first."""
    rng = random.Random(3)
    routes = [Route("stable", "s", 90), Route("canary", "c", 10), Route("old", "o", 0)]
    firsts = [order_candidates(routes, rng)[0].version for _ in range(5000)]
    assert 0.08 < firsts.count("canary") / 5000 < 0.12
    assert "old" not in firsts
    assert [r.version for r in order_candidates(routes, rng)][-1] == "old"


def test_proxy_reload_swaps_routes_atomically(tmp_path: Path, upstreams: dict[str, str]) -> None:
    """Requests reach the weighted revision with path, query and body; a reload moves them all."""
    routes = tmp_path / "routes.json"
    _write(routes, [("a", upstreams["a"], 100), ("b", upstreams["b"], 0)])
    splitter = Splitter("recs", routes)
    with TestClient(build_app(splitter)) as client:
        resp = client.post("/recommend?x=1", json={"customer_id": "c1"})
        assert resp.status_code == 200 and resp.json()["served_by"] == "a"
        assert resp.json()["query"] == "x=1" and "c1" in resp.json()["body"]
        assert resp.headers["X-ShelfOps-Revision"] == "a"
        assert resp.headers["X-ShelfOps-Model-Version"] == "a"
        _write(routes, [("a", upstreams["a"], 0), ("b", upstreams["b"], 100)])
        assert client.post("/_shelfops/reload").status_code == 200
        assert {client.get("/v2/health/ready").json()["served_by"] for _ in range(30)} == {"b"}
        snap = client.get("/_shelfops/routes").json()
        assert snap["inflight"] == {"a": 0, "b": 0} and snap["served"] == {"a": 1, "b": 30}


def test_the_upstream_client_is_ready_before_the_first_request(tmp_path: Path) -> None:
    """Starting the splitter builds its HTTP client (no request pays for it); stopping closes it."""
    splitter = Splitter("recs", tmp_path / "routes.json")
    with TestClient(build_app(splitter)):
        client = splitter._client
        assert client is not None and not client.is_closed
    assert client.is_closed


def test_refused_connection_fails_over(tmp_path: Path, upstreams: dict[str, str]) -> None:
    """A revision that refuses connections is skipped: the request is served by the other one."""
    routes = tmp_path / "routes.json"
    dead = f"http://127.0.0.1:{free_port()}"
    _write(routes, [("dead", dead, 100), ("b", upstreams["b"], 0)])
    with TestClient(build_app(Splitter("recs", routes))) as client:
        assert {client.get("/x").json()["served_by"] for _ in range(10)} == {"b"}
        _write(routes, [("dead", dead, 100)])
        client.post("/_shelfops/reload")
        resp = client.get("/x")
        assert resp.status_code == 503 and "no revision of recs answered" in resp.text


@pytest.fixture
def resetting_upstream() -> Iterator[str]:
    """A revision killed mid-request: it reads the request, then resets the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: the client's read fails (httpx.ReadError)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    listener.close()


def test_connection_reset_mid_request_fails_over(
    tmp_path: Path, upstreams: dict[str, str], resetting_upstream: str
) -> None:
    """A revision that dies mid-request (reset, no answer) is skipped; the client gets an answer."""
    routes = tmp_path / "routes.json"
    _write(routes, [("killed", resetting_upstream, 100), ("b", upstreams["b"], 0)])
    with TestClient(build_app(Splitter("recs", routes))) as client:
        replies = [client.post("/recommend", json={"customer_id": "c1"}) for _ in range(10)]
    assert {(r.status_code, r.json()["served_by"]) for r in replies} == {(200, "b")}


def test_bad_routes_file_is_refused_and_old_table_kept(
    tmp_path: Path, upstreams: dict[str, str]
) -> None:
    """A malformed routes file is rejected and traffic keeps flowing on the previous table."""
    routes = tmp_path / "routes.json"
    _write(routes, [("a", upstreams["a"], 100)])
    with TestClient(build_app(Splitter("recs", routes))) as client:
        routes.write_text("{not json")
        assert client.post("/_shelfops/reload").status_code == 400
        assert client.get("/x").json()["served_by"] == "a"
