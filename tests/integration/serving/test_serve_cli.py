"""``shelfops serve`` as an operator runs it: serves, answers, and stops its servers on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest
from tests.integration.conftest import free_port

from shelfops.serving.package import wait_ready
from shelfops.settings import Settings

pytestmark = pytest.mark.integration


def test_sigterm_stops_the_servers_it_started(trained_home: Settings) -> None:
    """``kill`` (a supervisor, ``docker stop``) leaves no ``bentoml serve`` holding the port."""
    port = free_port()
    argv = ["serve", "--model", "recs", "--recs-port", str(port)]
    cli = subprocess.Popen(
        [sys.executable, "-m", "shelfops.cli.main", *argv],
        env={**os.environ, "SHELFOPS_HOME": str(trained_home.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        assert wait_ready(url, cli, 240), "shelfops serve never became ready"
        answer = httpx.post(f"{url}/recommend", json={"customer_id": "nobody", "k": 3}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 3
        children = psutil.Process(cli.pid).children(recursive=True)
        assert children, "shelfops serve started no server process"
        cli.send_signal(signal.SIGTERM)
        out, _ = cli.communicate(timeout=60)
        assert b"stopping" in out
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"still running after SIGTERM: {[p.pid for p in alive]}"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live", timeout=5)
    finally:  # a failed run leaves nothing behind either
        if cli.poll() is None:
            children += psutil.Process(cli.pid).children(recursive=True)
            cli.kill()
        for proc in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
