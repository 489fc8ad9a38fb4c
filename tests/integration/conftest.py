"""Integration fixtures: a featurised ShelfOps home and a real redis-server."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.conftest import make_home

from shelfops.data.ingest import load_clean
from shelfops.features.build import build_feature_tables
from shelfops.rollout.processes import free_port
from shelfops.settings import Settings


@pytest.fixture()
def featurised_home(tmp_path: Path, small_exports) -> Settings:
    """A home with ingested data and feature tables written (Feast not applied yet)."""
    settings, _ = make_home(tmp_path, small_exports)
    build_feature_tables(load_clean(settings.root), settings.features_dir)
    return settings


def start_redis(workdir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a real redis-server on a loopback port (a free one unless given); returns the process
    and host:port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; run `make test-deps` (apt-get install redis-server)"
        )
    port = port or free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, f"127.0.0.1:{port}"
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port (`make test` installs it)."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)
