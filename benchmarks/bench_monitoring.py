"""Benchmark: the per-call overhead of PredictionLogger.log() on the request path.

Usage: ``python benchmarks/bench_monitoring.py [--calls 200000] [--threads 4] [--out FILE]``.
Measures log() with a realistic recommendation record (10 scalar features, 10 items) at sample
rates 1.0 and 0.1, single-threaded and from several threads at once, with the background writer
flushing parquet parts as it would in a service. Budget (docs/benchmarks.md, "Monitoring"):
under 20 us per call at sample rate 1.0, so logging stays far below a request's milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from shelfops.monitoring.store import PredictionLogger, read_predictions
from shelfops.settings import Settings

FEATURES = {
    "invoices_total": 12,
    "invoices_90d": 3,
    "monetary_90d": 81.5,
    "avg_basket_lines": 4.2,
    "discount_affinity": 0.15,
    "favourite_category": "Lighting",
    "opted_out_sale": False,
    "opted_out_personalization": False,
    "last_purchase_ts": 1_795_000_000,
    "customer_tenure_days": 410,
}
OUTPUTS = {"items": [{"stock_code": f"SKU{i:05d}", "score": 1.0 / (i + 1)} for i in range(10)]}


def _run(logger: PredictionLogger, calls: int, offset: int = 0) -> float:
    """Seconds spent in ``calls`` log() calls."""
    log = logger.log
    t0 = time.perf_counter()
    for i in range(calls):
        log("recs", "v1", f"r{offset + i}", f"C{i % 5000}", FEATURES, OUTPUTS, False, 3.2)
    return time.perf_counter() - t0


def measure(home: Path, calls: int, rate: float, threads: int) -> dict[str, float]:
    """Median per-call microseconds over three repeats, plus what was written."""
    per_call: list[float] = []
    for repeat in range(3):
        settings = Settings(home=home / f"r{rate}-t{threads}-{repeat}")
        logger = PredictionLogger(settings, rate, flush_records=1000, flush_seconds=5)
        if threads == 1:
            seconds = _run(logger, calls)
            per_call.append(seconds / calls * 1e6)
        else:
            share = calls // threads
            workers = [
                threading.Thread(target=_run, args=(logger, share, k * share))
                for k in range(threads)
            ]
            wall = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            wall = time.perf_counter() - wall
            per_call.append(wall / (share * threads) * 1e6)
        t0 = time.perf_counter()
        logger.close()
        close_s = time.perf_counter() - t0
    logged = len(read_predictions(settings))
    return {
        "sample_rate": rate,
        "threads": threads,
        "calls": calls,
        "us_per_call_median": statistics.median(per_call),
        "us_per_call_min": min(per_call),
        "logged_last_repeat": logged,
        "final_close_s": close_s,
    }


def main() -> int:
    """Run the benchmark, print the figures and fail when over budget."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200_000, help="log() calls per measurement.")
    ap.add_argument("--threads", type=int, default=4, help="Threads for the concurrent case.")
    ap.add_argument("--budget-us", type=float, default=20.0, help="Budget per call (us).")
    ap.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            measure(Path(tmp), args.calls, 1.0, 1),
            measure(Path(tmp), args.calls, 0.1, 1),
            measure(Path(tmp), args.calls, 1.0, args.threads),
        ]
    for r in rows:
        print(
            f"log(): rate {r['sample_rate']:.1f}, {r['threads']} thread(s): "
            f"{r['us_per_call_median']:.2f} us/call (min {r['us_per_call_min']:.2f}), "
            f"{r['logged_last_repeat']:,} rows written, close {r['final_close_s']:.3f} s"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
    worst = rows[0]["us_per_call_median"]
    if worst > args.budget_us:
        print(f"over budget: {worst:.2f} us > {args.budget_us} us per call", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
