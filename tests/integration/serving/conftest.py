"""Serving fixtures: servers loaded in process from the session's trained home, and under
``bentoml serve`` (``live``).

``trained_home`` (tests/conftest.py) trains the models once per session; servers here load the
stored model folders directly.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import free_port
from tests.integration.serving.servers import load_server

from shelfops.serving.app import create_app
from shelfops.serving.demand import DemandServer
from shelfops.serving.package import project_root, serve_command, wait_ready
from shelfops.serving.recs import RecsServer
from shelfops.settings import Settings


@pytest.fixture(scope="session")
def recs_server(trained_home: Settings) -> Iterator[RecsServer]:
    """The recommendation server, loaded in process."""
    server = load_server("recs", trained_home)
    yield server
    server.close()


@pytest.fixture(scope="session")
def demand_server(trained_home: Settings) -> Iterator[DemandServer]:
    """The demand server, loaded in process."""
    server = load_server("demand", trained_home)
    yield server
    server.close()


@pytest.fixture(scope="session")
def recs_client(recs_server: RecsServer) -> TestClient:
    """An in-process HTTP client of the recommendation app."""
    return TestClient(create_app(recs_server), raise_server_exceptions=False)


@pytest.fixture(scope="session")
def demand_client(demand_server: DemandServer) -> TestClient:
    """An in-process HTTP client of the demand app."""
    return TestClient(create_app(demand_server), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def live(
    trained_home: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``bentoml serve`` of both services on free loopback ports; yields their base URLs."""
    logs = tmp_path_factory.mktemp("serve-logs")
    procs: dict[str, tuple[subprocess.Popen[bytes], Path, str]] = {}
    for model in ("recs", "demand"):
        port = free_port()
        argv, env = serve_command(trained_home, model, port)
        log = logs / f"{model}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=os.environ | env, cwd=project_root(), stdout=out, stderr=out
            )
        procs[model] = (proc, log, f"http://127.0.0.1:{port}")
    try:
        for proc, log, url in procs.values():
            if not wait_ready(url, proc, 240):
                pytest.fail(f"{url} never became ready:\n{log.read_text()[-3000:]}")
        yield {model: url for model, (_, _, url) in procs.items()}
    finally:
        for proc, _, _ in procs.values():
            proc.terminate()
        for proc, _, _ in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
