"""Benchmark: recommendation serving against its floor and its peer, with one Locust harness.

Targets, each at 10 and 50 users who think about 1 s between requests, then 50 users who do not
(capacity), all with the same Locust users (``benchmarks/locust_serving.py``):

* floor: the recommendation server called in the Locust process (no HTTP);
* shelfops: our BentoML service (``bentoml serve``), V2 and friendly JSON;
* kserve: stock ``kserve.ModelServer`` hosting the same server (``benchmarks/kserve_peer.py``).

Servers are pinned to CPU 0 and Locust to CPU 1 (``taskset``) so they do not fight for a core.
Usage: ``python benchmarks/bench_serving.py [--home local_outputs] [--seconds 20]``. The home
needs registered models (``make quickstart``); without them the script runs the quickstart.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "benchmarks" / "locust_serving.py"


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() else []


def _locust(
    user: str, host: str, users: int, seconds: int, home: Path, out: Path, think_s: float
) -> dict[str, Any]:
    prefix = out / f"{user}-{users}-{think_s}"
    cmd = [
        *_pin(1),
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(LOCUSTFILE),
        user,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = os.environ | {"SHELFOPS_HOME": str(home), "SHELFOPS_BENCH_THINK_S": str(think_s)}
    subprocess.run(cmd, env=env, cwd=ROOT, check=False, capture_output=True, timeout=seconds + 120)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": round(float(row["Requests/s"]), 1),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "mean_ms": round(float(row["Average Response Time"]), 2),
    }


def _ensure_models(home: Path) -> None:
    latest = home / "bentoml" / "models" / "shelfops_recs" / "latest"
    if not latest.exists():
        print(f"no registered models under {home}: running the quickstart first", flush=True)
        subprocess.run(
            [str(Path(sys.executable).with_name("shelfops")), "--home", str(home), "quickstart"],
            check=True,
        )


def main() -> int:
    """Run every target at each user count and print the figures and ratios as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, default=Path("local_outputs"), help="ShelfOps home.")
    ap.add_argument("--seconds", type=int, default=20, help="Duration of each Locust run.")
    ap.add_argument("--users", default="10,50", help="Comma-separated user counts.")
    ap.add_argument("--think", type=float, default=1.0, help="Mean think time per user (s).")
    ap.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    args = ap.parse_args()
    home = args.home.resolve()
    _ensure_models(home)
    sys.path.insert(0, str(ROOT / "src"))
    from shelfops.rollout.processes import free_port
    from shelfops.serving.package import project_root, serve_command, wait_ready
    from shelfops.settings import Settings

    users = [int(u) for u in args.users.split(",")]
    settings = Settings(home=home)
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        try:
            ours_port, peer_port = free_port(), free_port()
            argv, env = serve_command(settings, "recs", ours_port)
            logs = out / "ours.log"
            procs.append(
                subprocess.Popen(
                    [*_pin(0), *argv],
                    env=os.environ | env,
                    cwd=project_root(),
                    stdout=logs.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        *_pin(0),
                        sys.executable,
                        str(ROOT / "benchmarks" / "kserve_peer.py"),
                        "--home",
                        str(home),
                        "--port",
                        str(peer_port),
                    ],
                    cwd=ROOT,
                    stdout=(out / "peer.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            ours, peer = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
            for url, proc in ((ours, procs[0]), (peer, procs[1])):
                if not wait_ready(url, proc, 240):
                    raise SystemExit(f"{url} did not become ready (logs in {out})")
            plan = [
                ("floor", "FloorUser", "http://unused"),
                ("shelfops_v2", "ShelfOpsV2User", ours),
                ("shelfops_recommend", "ShelfOpsRecommendUser", ours),
                ("kserve_v2", "KServeV2User", peer),
            ]
            for n in users:
                for name, user, host in plan:
                    print(f"{name} at {n} users, {args.think}s think time ...", flush=True)
                    results[f"{name}@{n}"] = _locust(
                        user, host, n, args.seconds, home, out, args.think
                    )
            # Capacity: the same users without think time, until the server saturates.
            n = max(users)
            for name, user, host in plan[1:]:
                print(f"{name} saturated at {n} users ...", flush=True)
                results[f"{name}@{n}-saturated"] = _locust(
                    user, host, n, args.seconds, home, out, 0
                )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    ratios: dict[str, Any] = {}
    top = max(users)
    saturated = {k: results[f"{k}@{top}-saturated"] for k in ("shelfops_v2", "kserve_v2")}
    ratios["saturated"] = {
        "shelfops_rps_over_kserve_rps": round(
            saturated["shelfops_v2"]["rps"] / max(saturated["kserve_v2"]["rps"], 1e-9), 2
        ),
        "shelfops_p95_over_kserve_p95": round(
            saturated["shelfops_v2"]["p95_ms"] / max(saturated["kserve_v2"]["p95_ms"], 1e-9), 2
        ),
    }
    for n in users:
        floor, ours_v2, peer_v2 = (
            results[f"{k}@{n}"] for k in ("floor", "shelfops_v2", "kserve_v2")
        )
        ratios[f"{n}_users"] = {
            "shelfops_rps_over_kserve_rps": round(ours_v2["rps"] / max(peer_v2["rps"], 1e-9), 2),
            "shelfops_p95_over_kserve_p95": round(
                ours_v2["p95_ms"] / max(peer_v2["p95_ms"], 1e-9), 2
            ),
            "shelfops_p50_minus_floor_ms": round(ours_v2["p50_ms"] - floor["p50_ms"], 1),
        }
    figures = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "pinning": "servers on CPU 0, Locust on CPU 1" if _pin(0) else "none (no taskset)",
        "seconds_per_run": args.seconds,
        "results": results,
        "ratios": ratios,
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
