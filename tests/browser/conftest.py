"""Browser fixtures: the trained home with logged traffic, a real recommendation service, the
console started by its CLI, and Debian's Chromium driven by Playwright.

Everything runs for real on loopback: ``bentoml serve`` for the recommendation service (the same
command ``shelfops serve`` runs) and ``shelfops console`` in a subprocess. Screenshots go to
``test-artifacts/console/`` (or ``$SHELFOPS_TEST_ARTIFACTS/console``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shelfops.console.share import CHROMIUM_FLAGS
from shelfops.rollout.processes import free_port
from shelfops.settings import Settings

REPO = Path(__file__).resolve().parents[2]
VIEWER = "viewer-browser-test-token"
EDITOR = "editor-browser-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = list(CHROMIUM_FLAGS)
RELOAD_S = 0.5
"""How often the test's recommendation service checks its rules file (default 2 s)."""


@dataclass(frozen=True)
class Live:
    """The running pieces a browser test talks to."""

    home: Settings
    recs_url: str
    console_url: str


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept after the run."""
    base = Path(os.environ.get("SHELFOPS_TEST_ARTIFACTS", REPO / "test-artifacts"))
    out = base / "console"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def live(trained_home: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Logged traffic on the trained home, the recommendation service, and the console."""
    from shelfops.serving.package import serve_command

    home = trained_home
    env = {**os.environ, "SHELFOPS_HOME": str(home.root)}
    logs = tmp_path_factory.mktemp("browser-logs")
    recs_port, console_port = free_port(), free_port()
    recs_url = f"http://127.0.0.1:{recs_port}"
    console_url = f"http://127.0.0.1:{console_port}"
    argv, serve_env = serve_command(home, "recs", recs_port)
    cli = [sys.executable, "-m", "shelfops.cli.main"]
    tokens = {"SHELFOPS_CONSOLE_VIEWER_TOKEN": VIEWER, "SHELFOPS_CONSOLE_EDITOR_TOKEN": EDITOR}
    # The service starts while traffic is simulated (each spends most of its start-up importing
    # and loading); the console starts once the simulated traffic is logged.
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(name: str, command: list[str], extra: dict[str, str]) -> None:
        log = logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, env=env | extra, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        started[name] = (proc, log)

    start("simulate", [*cli, "monitor", "simulate", "--requests", "120"], {})
    start("recs", argv, serve_env | {"SHELFOPS_SERVING_RULES_RELOAD_S": str(RELOAD_S)})
    try:
        simulate, simulate_log = started["simulate"]
        assert simulate.wait(timeout=300) == 0, simulate_log.read_text()[-3000:]
        start(
            "console",
            [*cli, "console", "--port", str(console_port), "--recs-url", recs_url],
            tokens,
        )
        _wait(f"{recs_url}/v2/health/ready", *started["recs"], 240)
        _wait(f"{console_url}/healthz", *started["console"], 240)
        yield Live(home, recs_url, console_url)
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                _stop(proc)
        # Leave the shared home as the serving tests expect it: shipped rules.
        shutil.rmtree(home.root / "rules", ignore_errors=True)
        (home.root / "audit" / "rules.jsonl").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright (`make test-deps` installs it).

    Module-scoped: Playwright's sync API keeps an event loop running while it is open, and later
    tests that call ``asyncio.run`` (the KServe client) need it closed.
    """
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing; run `make test-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
