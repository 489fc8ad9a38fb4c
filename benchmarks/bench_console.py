"""Benchmark: how long each console page takes to render on a home.

Usage::

    python benchmarks/bench_console.py [--home HOME | --lines 1000000] [--recs-url URL]
        [--repeats 20] [--out FILE]

Without ``--home`` it first builds one the way a user would (``shelfops data generate`` with
``--lines`` lines, 6,000 customers and 5,000 products; ``shelfops pipeline run --local``;
``shelfops monitor simulate --requests 2000``) in a temporary folder. It then builds the console
app for the home in process and times each page through real HTTP requests (``TestClient``):
the first request after start without the warm-up (cold: it fills the caches, i.e. reads the
data), the start-up warm-up (what ``shelfops console`` does before listening), and the median
and p95 of ``--repeats`` later requests (warm: what every visitor sees). The explorer is timed
with a customer when a recommendation service answers (``--recs-url`` or the local runtime),
which includes the service's own answer time. Budget (docs/benchmarks.md, "Console"): under
500 ms per warm page on the 1M-line home.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

BUDGET_MS = 500.0


def _time(client: object, url: str, repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reply = client.get(url)  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - t0) * 1000.0)
        if reply.status_code != 200:
            raise SystemExit(f"{url} answered {reply.status_code}: {reply.text[:300]}")
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(0.95 * len(samples)))],
        "max_ms": samples[-1],
    }


def build_home(lines: int) -> Path:
    """Generate, train and log traffic on a fresh home with the CLI; returns its folder."""
    import subprocess
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="shelfops-bench-console-"))
    env = {**os.environ, "SHELFOPS_HOME": str(home)}
    cli = [sys.executable, "-m", "shelfops.cli.main"]
    for argv in (
        ["data", "generate", "--lines", str(lines), "--customers", "6000", "--products", "5000"],
        [
            "pipeline",
            "run",
            "--local",
            "--demand-margin",
            "-1",
            "--recs-margin",
            "-1",
            "--accept-served-gap",
        ],
        ["monitor", "simulate", "--requests", "2000"],
    ):
        print(f"building the home: shelfops {' '.join(argv)}", file=sys.stderr)
        subprocess.run([*cli, *argv], env=env, check=True)
    return home


def main() -> int:
    """Time every page and print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="ShelfOps home to read.")
    parser.add_argument(
        "--lines", type=int, default=1_000_000, help="Lines of the generated home (no --home)."
    )
    parser.add_argument("--recs-url", default=None, help="Recommendation service for the explorer.")
    parser.add_argument("--repeats", type=int, default=20, help="Warm requests per page.")
    parser.add_argument("--out", type=Path, default=None, help="Write the JSON result here.")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from shelfops.console.app import create_app
    from shelfops.console.explorer import example_customers, recs_service_url
    from shelfops.console.warm import warm
    from shelfops.registry import use_bentoml_home
    from shelfops.settings import ConsoleSettings, Settings

    home_dir = args.home or build_home(args.lines)
    settings = Settings(home=home_dir)
    use_bentoml_home(settings)
    import pandas as pd

    lines = len(pd.read_parquet(settings.clean_dir / "transactions.parquet", columns=["invoice"]))
    console = ConsoleSettings(recs_url=args.recs_url) if args.recs_url else ConsoleSettings()
    pages = ["/insights", "/rules", "/forecasts", "/operations", "/share", "/explorer"]

    # Cold: a fresh app, first request per page fills what that page reads.
    app = create_app(settings, console)
    client = TestClient(app)
    cold = {}
    for page in pages:
        t0 = time.perf_counter()
        assert client.get(page).status_code == 200, page
        cold[page] = (time.perf_counter() - t0) * 1000.0
    # Start-up warm-up as `shelfops console` runs it, on another fresh app.
    fresh = create_app(settings, console)
    warm_s = warm(fresh)

    home = app.state.home
    url = recs_service_url(home, console.recs_url)
    customer = (example_customers(home) or [None])[0]
    if url and customer:
        pages.append(f"/explorer?customer_id={customer}")
    for page in pages:
        client.get(page)  # make sure every page's caches are filled
    warm_figures = {page: _time(client, page, args.repeats) for page in pages}
    # The rules preview is a POST (CSRF token from the page).
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/rules").text)
    form = {"csrf": csrf.group(1) if csrf else ""}
    from shelfops.console.rules_page import form_values
    from shelfops.serving.rules import MerchRules

    form |= form_values(MerchRules())
    preview = []
    for i in range(max(3, args.repeats // 4)):
        t0 = time.perf_counter()
        reply = client.post("/rules/preview", data=form)
        preview.append((time.perf_counter() - t0) * 1000.0)
        if reply.status_code != 200:
            raise SystemExit(f"preview answered {reply.status_code}: {reply.text[:500]}")
        if i == 0:
            first_preview = preview[0]
    result = {
        "home": str(settings.root),
        "transaction_lines": lines,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "recs_url": url,
        "cold_first_request_ms": cold,
        "startup_warm_s": warm_s,
        "warm": warm_figures,
        "rules_preview_first_ms": first_preview,
        "rules_preview_warm_median_ms": statistics.median(preview[1:]),
        "budget_ms": BUDGET_MS,
        "over_budget": [p for p, f in warm_figures.items() if f["median_ms"] > BUDGET_MS],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
