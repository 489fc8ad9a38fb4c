"""Benchmark: generate and ingest one million transaction lines (budget: 60 s and 2 GB each).

Each stage runs in its own process so peak RSS is that stage's alone. Run with ``make bench``;
figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATE = """
import datetime as dt, sys
from pathlib import Path
from shelfops.data.generate import GeneratorConfig, generate
config = GeneratorConfig(lines={lines}, customers=6000, products=5000, years=2.0,
                         end_date=dt.date(2026, 11, 15), seed=7)
generate(config).write(Path(sys.argv[1]))
"""

INGEST = """
import datetime as dt, sys
from pathlib import Path
from shelfops.data.ingest import ingest
raw = Path(sys.argv[1])
ingest(raw / "transactions.csv", raw.parent / "home", customers_path=raw / "customers.csv",
       products_path=raw / "products.csv", as_of=dt.datetime(2026, 11, 20))
"""


_REPORT_RSS = "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"


def _run(code: str, arg: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child Python process running ``code``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT_RSS, arg], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    return wall, int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    """Run both stages and print a JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="Transaction lines.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        gen_s, gen_mb = _run(GENERATE.format(lines=args.lines), str(raw))
        rows = sum(1 for _ in (raw / "transactions.csv").open()) - 1
        ing_s, ing_mb = _run(INGEST, str(raw))
    figures = {
        "lines_requested": args.lines,
        "lines_written": rows,
        "generate_seconds": round(gen_s, 1),
        "generate_peak_rss_mb": round(gen_mb),
        "ingest_seconds": round(ing_s, 1),
        "ingest_peak_rss_mb": round(ing_mb),
        "budget": "60 s and 2048 MB per stage",
        "machine": platform.machine(),
        "cpus": 2,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
