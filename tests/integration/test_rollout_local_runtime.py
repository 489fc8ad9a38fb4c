"""The local backend's process handling with stand-in revisions (no model needed): detached
sessions, recorded pids, routing through the splitter, stop, and a stale runtime reconciled."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import free_port
from tests.unit.rollout.fakes import ScriptedGate

from shelfops.rollout.backends.base import BackendError
from shelfops.rollout.backends.local import LocalBackend
from shelfops.rollout.engine import RolloutEngine
from shelfops.rollout.processes import ProcessInfo, is_alive
from shelfops.rollout.state import StateStore
from shelfops.settings import RolloutSettings, Settings

pytestmark = pytest.mark.integration

STANDIN = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ["SHELFOPS_SERVING_MODEL_TAG"].split(":")[1]

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-ShelfOps-Model-Version", VERSION)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"status": "ok"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, {"items": [], "model_version": VERSION})

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture()
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    """A local backend whose revisions are tiny stand-in HTTP servers."""
    script = tmp_path / "standin.py"
    script.write_text(STANDIN)

    def serve(_s: Settings, _m: str, port: int, tag: str) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, str(script), str(port)], {"SHELFOPS_SERVING_MODEL_TAG": tag}

    config = RolloutSettings(
        recs_port=free_port(), demand_port=free_port(), ready_timeout_s=20, steps=[50, 100]
    )
    settings = Settings(home=tmp_path / "home")
    local = LocalBackend(settings, config, serve_command=serve, resolve=lambda _s, _m, v: v)
    yield local
    local.stop("recs")


def _engine(backend: LocalBackend) -> RolloutEngine:
    store = StateStore(backend.settings.root / "rollout")
    return RolloutEngine(backend, store, ScriptedGate(), backend.config, actor="t")


def test_revisions_run_detached_and_stop_cleanly(backend: LocalBackend) -> None:
    """Revisions and splitter run in their own sessions; stop ends every recorded process."""
    engine = _engine(backend)
    assert engine.deploy("recs", "a").outcome == "promoted"
    assert engine.deploy("recs", "b").outcome == "promoted"
    seen = backend.observe("recs")
    assert seen.stable_version == "b" and seen.endpoint
    assert {r.version: r.percent for r in seen.revisions} == {"a": 0, "b": 100}  # a kept warm
    resp = httpx.post(f"{seen.endpoint}/recommend", json={"customer_id": "1"})
    assert resp.headers["X-ShelfOps-Revision"] == "b"
    runtime = (backend.dir / "runtime-recs.json").read_text()
    infos = [ProcessInfo.from_dict(d) for d in json.loads(runtime)["revisions"].values()]
    assert all(os.getsid(i.pid) == i.pid for i in infos)
    stopped = backend.stop("recs")
    assert len(stopped) == 3 and not any(is_alive(i) for i in infos)
    assert backend.observe("recs").endpoint is None


def test_stale_state_is_reconciled_after_stop(backend: LocalBackend) -> None:
    """After the runtime was stopped, deploying the recorded stable version starts it again."""
    engine = _engine(backend)
    engine.deploy("recs", "a")
    backend.stop("recs")
    result = engine.deploy("recs", "a")
    assert result.outcome == "promoted" and backend.observe("recs").stable_version == "a"
    events = [e["event"] for e in StateStore(backend.settings.root / "rollout").history()]
    assert "reconciled" in events


def test_taken_port_is_reported_with_the_setting_to_change(backend: LocalBackend) -> None:
    """A stable port held by another program fails with the variable that moves it."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", backend.config.recs_port))
        other.listen()
        with pytest.raises(BackendError, match="SHELFOPS_ROLLOUT_RECS_PORT"):
            backend.start_canary("recs", "a", None)
