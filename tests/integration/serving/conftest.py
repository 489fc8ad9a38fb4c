"""Serving fixtures: servers loaded in process from the session's trained home.

``trained_home`` (tests/conftest.py) trains the models once per session; servers here load the
stored model folders directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.integration.serving.servers import load_server

from shelfops.serving.app import create_app
from shelfops.serving.demand import DemandServer
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
