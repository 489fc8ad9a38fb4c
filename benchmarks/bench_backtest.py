"""Benchmark: the rolling-origin backtest of both models; wall time, peak RSS, every figure.

Usage:
  ``python benchmarks/bench_backtest.py [--lines 1000000] [--out FILE.json]`` (generated data)
  ``python benchmarks/bench_backtest.py --dataset completejourney [--out FILE.json]``
  ``--models demand`` (or ``recs``) times one model alone; the budget is for both.

Budgets (issue 14, docs/benchmarks.md): each backtest within 600 s and 3 GB peak RSS on 2 cores.
The figures per origin and their mean are what docs/evaluation.md tabulates.
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

from shelfops.evaluation.backtest import run_backtest
from shelfops.evaluation.metrics import (
    DEMAND_METRICS,
    DISCOVER_LIST_METRICS,
    DISCOVERY_METRICS,
    RECS_METRICS,
)
from shelfops.evaluation.rolling import OriginPlan
from shelfops.settings import Settings


def _figures(task: dict[str, Any], metrics: tuple[str, ...]) -> dict[str, Any]:
    names = ["model", *task["baselines"]]
    mean = {"model": task["model"], **task["baselines"]}
    return {
        "per_origin": {
            o: {n: {m: scores[n].get(m) for m in metrics} for n in names}
            for o, scores in task["per_origin"].items()
        },
        "mean": {n: {m: mean[n].get(m) for m in metrics} for n in names},
    }


def main() -> int:
    """Run the benchmark and print (and optionally write) the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default=None, help="completejourney instead of generated data.")
    ap.add_argument("--lines", type=int, default=1_000_000, help="Generated transaction lines.")
    ap.add_argument("--products", type=int, default=5_000, help="Generated products.")
    ap.add_argument("--customers", type=int, default=6_000, help="Generated customers.")
    ap.add_argument("--cutoff", default=None, help="First origin (default: latest complete).")
    ap.add_argument("--origins", type=int, default=3, help="Rolling origins.")
    ap.add_argument("--step-weeks", type=int, default=4, help="Weeks between origins.")
    ap.add_argument(
        "--models", default="both", help="demand, recs or both (default: both, the budget)."
    )
    ap.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    ap.add_argument("--budget-s", type=float, default=600.0, help="Wall-time budget (s).")
    ap.add_argument("--budget-gb", type=float, default=3.0, help="Peak RSS budget (GB).")
    args = ap.parse_args()
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}] {msg}", flush=True)

    gen_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "h")
        plan = OriginPlan(args.origins, args.step_weeks)
        if args.dataset:
            result = run_backtest(
                None,
                args.cutoff,
                settings,
                progress=say,
                dataset=args.dataset,
                plan=plan,
                models=args.models,
            )
        else:
            from shelfops.data.generate import GeneratorConfig, generate

            cfg = GeneratorConfig(
                lines=args.lines,
                products=args.products,
                customers=args.customers,
                end_date=dt.date(2025, 6, 29),
                seed=7,
            )
            paths = generate(cfg).write(Path(tmp) / "raw")
            gen_s = time.perf_counter() - t0
            result = run_backtest(
                paths["transactions"],
                args.cutoff,
                settings,
                progress=say,
                plan=plan,
                models=args.models,
            )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_gb = usage.ru_maxrss / 1024**2
    figures = {
        "data": args.dataset or f"generated {args.lines:,} lines",
        "cutoff": result["cutoff"],
        "origins": result["origins"],
        "generate_s": round(gen_s, 1),
        "backtest_wall_s": round(result["wall_time_s"], 1),
        "peak_rss_gb": round(peak_gb, 2),
        # CPU seconds of this process: on a shared machine, wall time alone mostly measures load.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "timings_s": {k: round(v, 1) for k, v in result["timings_s"].items()},
        "models": args.models,
        "machine": "2 cores, shared",
        "date": dt.date.today().isoformat(),
    }
    if "demand" in result:
        figures["demand"] = _figures(result["demand"], DEMAND_METRICS)
        figures["products_evaluated"] = result["demand"]["products_evaluated"]
        figures["demand_segments"] = result["demand"]["segments"]
    if "recommendations" in result:
        figures["recommendations"] = _figures(
            result["recommendations"], RECS_METRICS + DISCOVERY_METRICS + DISCOVER_LIST_METRICS
        )
        figures["customers_evaluated"] = result["recommendations"]["customers_evaluated"]
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    ok = figures["backtest_wall_s"] <= args.budget_s and peak_gb <= args.budget_gb
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
