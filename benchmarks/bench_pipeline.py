"""Benchmark: the training pipeline run with kfp.local: wall time and orchestration overhead.

For each size, generates a retailer into a fresh home and runs the whole DAG (ingest to package)
with ``shelfops.orchestration.local.run_local``. Overhead is the wall time minus the sum of the
seconds each step spent in ShelfOps code (process start, imports, kfp executor, artifact I/O).
Margins default to -1 so every step runs, whatever the gates would decide on that sample.

Usage: ``python benchmarks/bench_pipeline.py [--lines 60000 --lines 1000000] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shelfops.data.generate import GeneratorConfig, generate
from shelfops.orchestration.local import run_local
from shelfops.settings import Settings

END = dt.date(2026, 11, 15)
AS_OF = "2026-11-20"


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench(lines: int, margin: float) -> dict[str, Any]:
    """Generate ``lines`` lines and run the pipeline once; return its figures.

    Args:
        lines: Transaction lines (60,000 is the quickstart sample).
        margin: Gate margin for both models.

    Returns:
        Wall, compute and overhead seconds, per-step figures and the run status.
    """
    big = lines >= 500_000
    config = GeneratorConfig(
        lines=lines,
        customers=6_000 if big else 1_500,
        products=5_000 if big else 400,
        years=2.0,
        end_date=END,
        seed=7,
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        t0 = time.perf_counter()
        generate(config).write(settings.raw_dir / "generated")
        gen_s = time.perf_counter() - t0
        cpu0 = _cpu_s()
        summary = run_local(
            settings,
            {"as_of": AS_OF, "demand_margin": margin, "recs_margin": margin},
            # run_local sends stdout to the run log; progress goes to the terminal.
            lambda name, state: print(
                f"  [{time.perf_counter() - t0:7.1f}] {name}: {state}", file=sys.__stdout__
            ),
        )
        cpu_s = _cpu_s() - cpu0
    return {
        "lines": lines,
        "status": summary.status,
        "reason": summary.reason,
        "generate_s": round(gen_s, 1),
        "pipeline_wall_s": round(summary.wall_s, 1),
        "step_compute_s": round(summary.compute_s, 1),
        "overhead_s": round(summary.overhead_s, 1),
        "cpu_s": round(cpu_s, 1),  # this process and the step subprocesses; robust to load
        "steps": {
            s.name: {"wall_s": round(s.wall_s, 1), "compute_s": round(s.compute_s, 1)}
            for s in summary.steps
            if s.status != "skipped"
        },
    }


def main() -> int:
    """Run the benchmark for every size and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--lines", type=int, action="append", help="Lines (repeatable; default 60k and 1M)."
    )
    ap.add_argument("--margin", type=float, default=-1.0, help="Gate margin for both models.")
    ap.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    args = ap.parse_args()
    results = []
    for lines in args.lines or [60_000, 1_000_000]:
        print(f"pipeline on {lines:,} lines", flush=True)
        results.append(bench(lines, args.margin))
        print(json.dumps(results[-1], indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0 if all(r["status"] == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
