"""Serving fixtures: a home with registered models, and servers loaded in process.

Models are trained once per session by the real CLI in a subprocess (so BentoML's home is set
before BentoML is imported there); servers here load the stored model folders directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_home
from tests.integration.serving.servers import load_server

from shelfops.data.ingest import load_clean
from shelfops.features.build import build_feature_tables
from shelfops.features.store import FeatureRepo
from shelfops.serving.app import create_app
from shelfops.serving.demand import DemandServer
from shelfops.serving.recs import RecsServer
from shelfops.settings import Settings


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory, small_exports) -> Settings:
    """Ingested data, Feast applied and materialized (SQLite), both models registered."""
    settings, _ = make_home(tmp_path_factory.mktemp("served"), small_exports)
    build_feature_tables(load_clean(settings.root), settings.features_dir)
    repo = FeatureRepo(settings)
    repo.apply()
    repo.materialize()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shelfops.cli.main",
            "train",
            "--demand-margin",
            "-1",
            "--recs-margin",
            "-1",
        ],
        env={**os.environ, "SHELFOPS_HOME": str(settings.root)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return settings


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
