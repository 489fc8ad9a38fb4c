"""`shelfops loadtest run|gate` drive Locust with loadtests/locustfile.py against stand-in apps."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.conftest import make_home
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]


def _standin(delay_s: float, seen: list[dict[str, object]], items: int = 1) -> Starlette:
    """A service with the recs and demand JSON routes, answering after ``delay_s``."""

    async def recommend(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        await asyncio.sleep(delay_s)
        return JSONResponse(
            {
                "customer_id": body["customer_id"],
                "model_version": "x",
                "degraded": False,
                "items": [{"stock_code": f"S{i}", "score": 1.0} for i in range(items)],
            }
        )

    async def forecast(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        await asyncio.sleep(delay_s)
        return JSONResponse({"model_version": "x", "degraded": False, "forecasts": []})

    return Starlette(
        routes=[
            Route("/recommend", recommend, methods=["POST"]),
            Route("/forecast", forecast, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def standins() -> Iterator[dict[str, tuple[str, list[dict[str, object]]]]]:
    """Fast, slow (150 ms) and empty-handed stand-ins, with the requests each received."""
    out, servers = {}, []
    for name, delay, items in (("fast", 0.0, 1), ("slow", 0.15, 1), ("empty", 0.0, 0)):
        seen: list[dict[str, object]] = []
        port = free_port()
        app = _standin(delay, seen, items)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        out[name] = (f"http://127.0.0.1:{port}", seen)
    while not all(s.started for s in servers):
        time.sleep(0.05)
    yield out
    for server in servers:
        server.should_exit = True


def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "SHELFOPS_HOME": str(home),
        "SHELFOPS_ROLLOUT_GATE_USERS": "2",
        "SHELFOPS_ROLLOUT_GATE_DURATION_S": "5",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "shelfops.cli.main", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _recs_gate(
    home: Path, canary: str, stable: str, json_out: bool = False
) -> subprocess.CompletedProcess[str]:
    """`shelfops loadtest gate` of a recs canary against a stable, p95 limit 100 ms."""
    args = ["loadtest", "gate", "--model", "recs", "--canary-url", canary, "--stable-url", stable]
    return _cli(home, *args, *(["--json"] if json_out else []), SHELFOPS_ROLLOUT_MAX_P95_MS="100")


def test_gate_passes_fast_and_fails_slow_canary(
    tmp_path: Path, small_exports, standins: dict[str, tuple[str, list[dict[str, object]]]]
) -> None:
    """The gate exits 0 for a fast canary and 1 for a slow one, with CSV and HTML reports."""
    settings, _ = make_home(tmp_path, small_exports)
    fast, fast_seen = standins["fast"]
    slow, _ = standins["slow"]
    ok = _recs_gate(settings.root, fast, fast, json_out=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    verdict = json.loads(ok.stdout.splitlines()[0])
    assert verdict["passed"] and verdict["canary"]["requests"] > 20
    for key in ("canary_csv", "canary_html", "stable_csv", "stable_html"):
        assert Path(verdict["reports"][key]).is_file()
    assert Path(verdict["reports"]["canary_html"]).read_text().lower().startswith("<!doctype html")
    # Traffic uses real ids from the clean tables, plus a few cold-start customers.
    known = set(pd.read_parquet(settings.clean_dir / "customers.parquet")["customer_id"])
    ids = {str(b["customer_id"]) for b in fast_seen if "customer_id" in b}
    assert len(ids & known) > 5
    assert all(i in known or i.startswith("NEW-") for i in ids)
    # the gate's traffic includes the discover list (about one request in eleven)
    assert any(b.get("discover") is True for b in fast_seen)
    assert any("context" in b for b in fast_seen)

    bad = _recs_gate(settings.root, slow, fast)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "gate failed" in bad.stdout and "p95" in bad.stdout

    # Fast 200s that show the shopper nothing are failures: the gate rolls such a canary back.
    empty, _ = standins["empty"]
    blank = _recs_gate(settings.root, empty, fast, json_out=True)
    assert blank.returncode == 1, blank.stdout + blank.stderr
    failed = json.loads(blank.stdout.splitlines()[0])
    assert not failed["passed"] and failed["canary"]["error_rate"] > 0.5, failed["canary"]


def test_run_profiles_write_reports_and_fail_on_breach(
    tmp_path: Path, standins: dict[str, tuple[str, list[dict[str, object]]]]
) -> None:
    """`loadtest run` writes reports (spike shape on demand) and exits 1 on a p95 breach."""
    fast, seen = standins["fast"]
    before = len(seen)
    done = _cli(
        tmp_path,
        "loadtest",
        "run",
        "--model",
        "demand",
        "--url",
        fast,
        "--profile",
        "spike",
        "--users",
        "4",
        "--duration",
        "4",
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "out").glob("run-spike-demand-*_stats.csv"))
    assert list((tmp_path / "out").glob("run-spike-demand-*.html"))
    slow, _ = standins["slow"]
    breach = _cli(
        tmp_path,
        "loadtest",
        "run",
        "--model",
        "recs",
        "--url",
        slow,
        "--duration",
        "3",
        "--out",
        str(tmp_path / "out"),
        SHELFOPS_ROLLOUT_MAX_P95_MS="100",
    )
    assert breach.returncode == 1 and "p95" in breach.stdout, breach.stdout + breach.stderr
    forecasts = [b for b in seen[before:] if "stock_codes" in b]
    assert forecasts and all(1 <= len(b["stock_codes"]) <= 5 for b in forecasts)  # type: ignore[arg-type]
