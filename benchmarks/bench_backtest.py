"""Benchmark: backtest both models on a generated export; wall time and peak RSS.

Usage: ``python benchmarks/bench_backtest.py [--lines 1000000] [--out docs/...json]``.
Budgets (docs/benchmarks.md, "Models"): 1M lines / 5k products / 6k customers within 600 s
and 4 GB peak RSS on 2 cores; the quickstart sample (60k lines) trains both models in 120 s.
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

from shelfops.data.generate import GeneratorConfig, generate
from shelfops.evaluation.backtest import run_backtest
from shelfops.settings import Settings


def main() -> int:
    """Run the benchmark and print (and optionally write) the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000, help="Transaction lines.")
    ap.add_argument("--products", type=int, default=5_000, help="Products.")
    ap.add_argument("--customers", type=int, default=6_000, help="Customers.")
    ap.add_argument("--cutoff", default="2025-03-31", help="Backtest cutoff.")
    ap.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    ap.add_argument("--budget-s", type=float, default=600.0, help="Wall-time budget (s).")
    ap.add_argument("--budget-gb", type=float, default=4.0, help="Peak RSS budget (GB).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GeneratorConfig(
            lines=args.lines,
            products=args.products,
            customers=args.customers,
            end_date=dt.date(2025, 6, 29),
            seed=7,
        )
        t0 = time.perf_counter()
        paths = generate(cfg).write(Path(tmp) / "raw")
        gen_s = time.perf_counter() - t0
        result = run_backtest(
            paths["transactions"],
            args.cutoff,
            Settings(home=Path(tmp) / "h"),
            progress=lambda m: print(f"[{time.perf_counter() - t0:7.1f}] {m}", flush=True),
        )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    figures = {
        "lines": args.lines,
        "generate_s": round(gen_s, 1),
        "backtest_wall_s": round(result["wall_time_s"], 1),
        "peak_rss_gb": round(peak_gb, 2),
        "timings_s": {k: round(v, 1) for k, v in result["timings_s"].items()},
        "demand_wrmsse": {
            "model": result["demand"]["model"]["wrmsse"],
            **{k: v["wrmsse"] for k, v in result["demand"]["baselines"].items()},
        },
        "recs_recall@10": {
            "model": result["recommendations"]["model"]["recall@10"],
            **{k: v["recall@10"] for k, v in result["recommendations"]["baselines"].items()},
        },
        "products_evaluated": result["demand"]["products_evaluated"],
        "customers_evaluated": result["recommendations"]["customers_evaluated"],
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    ok = figures["backtest_wall_s"] <= args.budget_s and peak_gb <= args.budget_gb
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
