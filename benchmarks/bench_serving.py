"""Benchmark: serving budgets in process, per online read, and over HTTP against a stock peer.

In process (``--only inprocess``; CPU time of the process, median over many calls):

* one recommendation through ``RecsServer.recommend_many`` (store read, Predictor, rules);
* a batch of 64 customers, per customer; a 50-product forecast through ``DemandServer.forecast``;
* the batch's wall-time tail with the loaded heap not frozen, then frozen as the services
  freeze it (:func:`_heap_tail`: full garbage collections of the loaded heap);
* one online-store read (consent and behaviour of one customer, the request's one round trip),
  p99 of wall time, on the home's SQLite store and on a real redis-server started here.

Over HTTP (``--only http``), the Locust harness below.

Targets, each at 10 and 50 users who think about 1 s between requests, then 50 users who do not
(capacity), all with the same Locust users (``benchmarks/locust_serving.py``):

* floor: the recommendation server called in the Locust process (no HTTP);
* shelfops: our BentoML service (``bentoml serve``), V2 and friendly JSON;
* kserve: stock ``kserve.ModelServer`` hosting the same server (``benchmarks/kserve_peer.py``);
* before (with ``--baseline DIR``): the same BentoML service served from another checkout (for
  example ``git archive main | tar -x -C DIR``), so a change to the HTTP layer is measured
  against the code before it in the same run, on the same home and model.

Servers are pinned to CPU 0 and Locust to CPU 1 (``taskset``) so they do not fight for a core.
Usage: ``python benchmarks/bench_serving.py [--home local_outputs] [--seconds 20]
[--baseline DIR]``. With ``--only inprocess --baseline DIR`` the in-process budgets of both
checkouts run alternately (before, after, before, after) and every served answer of the home is
compared between them (:func:`inprocess_side_by_side`); then the two recommendation budgets of
both are measured call by call in turn (:func:`interleaved`), which a shared machine's slow
minutes cannot tilt towards one side. The home
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "benchmarks" / "locust_serving.py"


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() else []


def _tree_cpu_s(proc: subprocess.Popen[bytes] | None) -> float:
    """CPU seconds (user + system) used so far by a server process and its children."""
    if proc is None:
        return 0.0
    import psutil

    total = 0.0
    root = psutil.Process(proc.pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _locust(
    user: str,
    host: str,
    users: int,
    seconds: int,
    home: Path,
    out: Path,
    think_s: float,
    server: subprocess.Popen[bytes] | None = None,
) -> dict[str, Any]:
    """One Locust run; with ``server``, also the server's CPU milliseconds per request.

    CPU per request does not depend on how much of the core the server was given, so on a
    shared machine it compares targets more fairly than requests per second do.
    """
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
    cpu_before = _tree_cpu_s(server)
    subprocess.run(cmd, env=env, cwd=ROOT, check=False, capture_output=True, timeout=seconds + 120)
    cpu_s = _tree_cpu_s(server) - cpu_before
    with open(f"{prefix}_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    requests = int(row["Request Count"])
    cpu = {"server_cpu_ms_per_request": round(cpu_s * 1000 / max(requests, 1), 2)}
    return (cpu if server else {}) | {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": round(float(row["Requests/s"]), 1),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "mean_ms": round(float(row["Average Response Time"]), 2),
    }


def _start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a server process in its own session, with its output in ``log``.

    Every server gets its own session because ``bentoml serve`` starts its worker in one: with
    the kernel's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) each
    session is one scheduling group, and on a shared machine a server left in the benchmark's
    session got about twice the CPU share of one in its own (measured: stock KServe 0.79 of
    CPU 0 against 0.38 when started with ``setsid``, same CPU per request).
    """
    with log.open("wb") as handle:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _cpu_ms(fn: Any, n: int) -> dict[str, float]:
    """Median and p95 CPU milliseconds of ``fn(i)`` in this process (after a short warm-up).

    Process CPU, not this thread's: the online read runs on the reader's own thread (its
    deadline), and its CPU belongs to the request. The server's idle refresh threads add
    nothing measurable.
    """
    import time

    for i in range(min(20, n)):
        fn(i)
    spent = []
    for i in range(n):
        t = time.process_time()
        fn(i)
        spent.append((time.process_time() - t) * 1000.0)
    spent.sort()
    return {
        "median_ms": round(spent[len(spent) // 2], 3),
        "p95_ms": round(spent[int(len(spent) * 0.95)], 3),
        "calls": n,
    }


def _heap_tail(fn: Any, n: int) -> dict[str, Any]:
    """Wall-time tail of ``fn(i)`` with the loaded heap not frozen, then frozen as the services do.

    ``n`` calls as loaded, then :func:`~shelfops.serving.runtime.freeze_loaded_heap` and ``n``
    calls more (one after the other, not in turns: the freeze's own full collection resets the
    count that schedules the next, so alternating would hide the pauses being measured). Reports
    each side's p50, p99 and slowest call and how many full collections (which walk every
    object not frozen) ran during its calls.
    """
    import gc

    try:
        from shelfops.serving.runtime import freeze_loaded_heap
    except ImportError:  # a checkout from before the services froze their heap
        return {}
    full = {"not_frozen": 0, "frozen": 0}
    timing: list[str] = []  # the side whose calls run now (empty between them)

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2 and timing:
            full[timing[0]] += 1

    out: dict[str, Any] = {}
    gc.callbacks.append(count)
    try:
        for name in full:
            if name == "frozen":
                freeze_loaded_heap()
            timing[:] = [name]
            ms = []
            for i in range(n):
                t = time.perf_counter()
                fn(i)
                ms.append((time.perf_counter() - t) * 1000.0)
            timing.clear()
            ms.sort()
            out[name] = {
                "p50_ms": round(ms[len(ms) // 2], 2),
                "p99_ms": round(ms[int(len(ms) * 0.99)], 2),
                "max_ms": round(ms[-1], 2),
                "full_collections": full[name],
                "calls": n,
            }
    finally:
        gc.callbacks.remove(count)
        gc.unfreeze()
    return out


def _wall_ms(fn: Any, n: int) -> dict[str, float]:
    """p50/p99 wall milliseconds of ``fn(i)``, and the CPU p99 of the calling thread.

    On a shared machine the wall-clock tail is mostly time the process spent waiting for a
    core; the CPU figure of the same calls shows what the read itself costs.
    """
    import time

    for i in range(min(20, n)):
        fn(i)
    spent, cpu = [], []
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        fn(i)
        cpu.append((time.thread_time() - c) * 1000.0)
        spent.append((time.perf_counter() - t) * 1000.0)
    spent.sort()
    cpu.sort()
    return {
        "p50_ms": round(spent[len(spent) // 2], 3),
        "p99_ms": round(spent[int(len(spent) * 0.99)], 3),
        "cpu_p99_ms": round(cpu[int(len(cpu) * 0.99)], 3),
        "calls": n,
    }


def _read(reader: Any, refs: list[str], customer: str) -> None:
    """One request-path read through the server's reader; a fallback would void the figure."""
    rows, reason = reader.read(refs, [{"customer_id": customer}])
    if rows is None:
        raise SystemExit(f"the online read failed ({reason}): the figure would be a fallback's")


def _recs_with_picks(home: Path, n: int) -> tuple[Any, Any, list[str], list[str]]:
    """Settings, the loaded recommendation server, customers with history, ``n`` draws of them.

    The ``n`` are drawn with replacement and a fixed seed, so every caller (and both sides of
    :func:`interleaved`) serves the same customers in the same order.
    """
    import pandas as pd

    from shelfops.registry import model_path, use_bentoml_home
    from shelfops.serving.runtime import new_server
    from shelfops.settings import ServingSettings, Settings

    settings = Settings(home=home)
    use_bentoml_home(settings)
    behaviour = pd.read_parquet(settings.features_dir / "customer_behaviour.parquet")
    known = behaviour["customer_id"].astype(str).unique().tolist()
    rng = __import__("random").Random(7)
    picks = [rng.choice(known) for _ in range(n)]
    recs = new_server("recs", settings, ServingSettings(online_timeout_ms=5000))
    recs.load(model_path("shelfops_recs:latest"), "shelfops_recs:latest")
    return settings, recs, known, picks


def inprocess(home: Path, calls: int) -> dict[str, Any]:
    """The in-process budgets: CPU per recommendation, per batched customer, per forecast; reads.

    Args:
        home: A home with registered models and a materialized online store.
        calls: Calls per measurement.

    Returns:
        Figures and their budgets.
    """
    from shelfops.features.store import FeatureRepo
    from shelfops.registry import model_path
    from shelfops.serving.online import OnlineReader
    from shelfops.serving.runtime import new_server
    from shelfops.serving.schemas import ForecastRequest
    from shelfops.settings import ServingSettings

    settings, recs, known, picks = _recs_with_picks(home, max(calls, 64 * 20))
    out: dict[str, Any] = {}
    try:
        out["catalogue_items"] = len(recs.items)
        out["customers_with_history"] = len(known)
        out["one_recommendation"] = _cpu_ms(
            lambda i: recs.recommend_many([picks[i]], 10, synthetic=True), calls
        )
        # a batch costs about 64 single calls, but 15 batches left the median at the mercy of
        # a few slow ones on a shared machine: a quarter of the calls' worth, at least 30
        batches = max(calls // 16, 30)
        per_batch = _cpu_ms(
            lambda i: recs.recommend_many(picks[i * 64 % len(picks) :][:64], 10, synthetic=True),
            batches,
        )
        out["batch_of_64_per_customer"] = {
            "median_ms": round(per_batch["median_ms"] / 64, 3),
            "p95_ms": round(per_batch["p95_ms"] / 64, 3),
            "calls": batches,
        }
        # the read a request makes: the server's reader, on this thread, under its deadline
        refs = recs._refs["customer"]
        out["online_read_sqlite"] = _wall_ms(lambda i: _read(recs.online, refs, picks[i]), calls)
        # The served default answers products that sold lately from the bulk forecast snapshot;
        # the request path (snapshot off) reads the store and runs the model per request. Both are
        # measured on the same 50 products, and the refresh the snapshot costs is reported.
        codes: list[str] = []
        for key, refresh in (("forecast_50_products", 300.0), ("forecast_50_request_path", 0.0)):
            # (a tree from before the snapshot, compared with --compare, knows no such setting)
            known = "forecast_refresh_s" in ServingSettings.model_fields
            serving = ServingSettings(
                online_timeout_ms=5000, **({"forecast_refresh_s": refresh} if known else {})
            )
            demand = new_server("demand", settings, serving)
            demand.load(model_path("shelfops_demand:latest"), "shelfops_demand:latest")
            try:
                snapshot = getattr(demand, "snapshot", None)
                if snapshot is not None:
                    codes = list(snapshot.row)[:50]
                    started = time.thread_time()
                    demand.refresh_forecasts()  # type: ignore[attr-defined]
                    snapshot = demand.snapshot  # type: ignore[attr-defined]
                    out["forecast_snapshot"] = {
                        "products": len(snapshot.row),
                        "refresh_wall_s": round(snapshot.seconds, 2),
                        "refresh_cpu_s": round(time.thread_time() - started, 2),
                        "every_s": refresh,
                    }
                request = ForecastRequest(
                    stock_codes=codes or list(demand.last_seen)[:50], horizon=13
                )
                out[key] = _cpu_ms(
                    lambda i, d=demand, r=request: d.forecast(r, synthetic=True),
                    max(calls // 10, 30),
                )
            finally:
                demand.close()
        with tempfile.TemporaryDirectory() as tmp:
            from tests.integration.conftest import start_redis  # the suite's own launcher

            proc, url = start_redis(Path(tmp))
            try:
                cluster = settings.model_copy(update={"profile": "cluster", "redis_url": url})
                FeatureRepo(cluster).materialize()
                reader = OnlineReader(lambda t: FeatureRepo(cluster, read_timeout_s=t), 5.0)
                out["online_read_redis"] = _wall_ms(lambda i: _read(reader, refs, picks[i]), calls)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
        # last: freezing and thawing the heap changes when later full collections run
        out["batch_of_64_heap"] = _heap_tail(
            lambda i: recs.recommend_many(picks[i * 64 % len(picks) :][:64], 10, synthetic=True),
            max(calls // 2, 500),
        )
    finally:
        recs.close()
    budgets = {
        "one_recommendation": ("median_ms", 1.0),
        "batch_of_64_per_customer": ("median_ms", 0.2),
        "forecast_50_products": ("median_ms", 5.0),
        "online_read_sqlite": ("p99_ms", 2.0),
        "online_read_redis": ("p99_ms", 2.0),
    }
    out["budgets"] = {
        name: {
            "figure": out[name][key],
            "budget": limit,
            "ratio": round(out[name][key] / limit, 2),
            "met": out[name][key] <= limit,
        }
        for name, (key, limit) in budgets.items()
    }
    return out


def served_answers(home: Path) -> list[dict[str, Any]]:
    """Every answer the recommendation server gives the home's customers, for an identity check.

    Each customer with history (and 50 unknown ids) alone, then in batches of 64, with
    ``explain`` (so what each rule removed is compared too), and the batches once more with a
    shopping context (a category and excluded items). Request ids are left out.

    Args:
        home: A home with registered models and a materialized online store.

    Returns:
        One record per answer, in call order.
    """
    import pandas as pd

    from shelfops.registry import model_path, use_bentoml_home
    from shelfops.serving.runtime import new_server
    from shelfops.serving.schemas import RecommendContext
    from shelfops.settings import ServingSettings, Settings

    settings = Settings(home=home)
    use_bentoml_home(settings)
    behaviour = pd.read_parquet(settings.features_dir / "customer_behaviour.parquet")
    ids = sorted(behaviour["customer_id"].astype(str).unique().tolist())
    ids += [f"unknown-{i}" for i in range(50)]
    recs = new_server("recs", settings, ServingSettings(online_timeout_ms=5000))
    recs.load(model_path("shelfops_recs:latest"), "shelfops_recs:latest")
    out: list[dict[str, Any]] = []
    try:
        stats = recs.predictor.model.stats
        fixed = pd.Timestamp(stats.cutoff) + pd.Timedelta(days=3)
        recs.clock = lambda: fixed  # scores depend on the time; both runs use the same
        category = next((c for c in stats.category if c and c != "Unknown"), None)
        context = RecommendContext(category=category, exclude_stock_codes=list(stats.items[:20]))
        calls: list[tuple[list[str], Any]] = [([c], None) for c in ids]
        calls += [(ids[i : i + 64], None) for i in range(0, len(ids), 64)]
        calls += [(ids[i : i + 64], context) for i in range(0, len(ids), 64)]
        for batch, ctx in calls:
            for resp in recs.recommend_many(batch, 10, context=ctx, explain=True, synthetic=True):
                record = resp.model_dump()
                record.pop("request_id")
                out.append(record)
    finally:
        recs.close()
    return out


def _inprocess_of(code: Path, home: Path, calls: int, out: Path, answers: bool) -> dict[str, Any]:
    """Run the in-process budgets (and with ``answers``, every answer) importing ``code``."""
    figures, answers_file = out / "figures.json", out / "answers.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--home", str(home)]
    argv += ["--only", "inprocess", "--calls", str(calls), "--code", str(code)]
    argv += ["--out", str(figures)] + (["--answers", str(answers_file)] if answers else [])
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(figures.read_text())
    if answers:
        result["answers"] = json.loads(answers_file.read_text())
    return result


SCORE_TOLERANCE = 1e-5
"""Scores of two checkouts' answers count as equal this close (float32 rounding of features)."""


def _close(a: Any, b: Any) -> bool:
    """Whether two answers are the same, scores compared within :data:`SCORE_TOLERANCE`.

    Items, order, reasons, sources and removals must be equal; a change that reorders float
    arithmetic may move a score's last bits.
    """
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= SCORE_TOLERANCE
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def inprocess_side_by_side(base: Path, home: Path, calls: int) -> dict[str, Any]:
    """The in-process budgets of another checkout and of this one, alternating, in one run.

    Before, after, before, after (each in its own process, so each imports its own code); the
    served answers of both must be the same (items, order, reasons, sources, removals, and
    scores within :data:`SCORE_TOLERANCE`); how many are identical to the bit is reported too.

    Args:
        base: The checkout to compare with (for example ``git archive main | tar -x -C DIR``).
        home: The home both serve.
        calls: Calls per measurement.

    Returns:
        Both runs' figures, after / before ratios of the medians, and the identity check.
    """
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, code) in enumerate([("before", base), ("after", ROOT)] * 2):
            print(f"in-process budgets, {name} (round {i // 2 + 1}) ...", flush=True)
            folder = Path(tmp) / str(i)
            folder.mkdir()
            runs[name].append(_inprocess_of(code.resolve(), home, calls, folder, i < 2))
    answers = {name: r[0].pop("answers") for name, r in runs.items()}
    pairs = list(zip(answers["before"], answers["after"], strict=False))
    differ = [i for i, (a, b) in enumerate(pairs) if not _close(a, b)]
    same = not differ and len(answers["before"]) == len(answers["after"])
    keys = ("one_recommendation", "batch_of_64_per_customer", "forecast_50_products")
    ratios = {
        key: [
            round(a["inprocess"][key]["median_ms"] / b["inprocess"][key]["median_ms"], 2)
            for a, b in zip(runs["after"], runs["before"], strict=True)
        ]
        for key in keys
    }
    return {
        "runs": {n: [r["inprocess"] for r in v] for n, v in runs.items()},
        "after_over_before_median": ratios,
        "answers_compared": len(answers["after"]),
        "answers_identical": same,
        "answers_bit_identical": sum(a == b for a, b in pairs),
        "score_tolerance": SCORE_TOLERANCE,
        "first_difference": None
        if same
        else {
            "index": differ[0] if differ else len(answers["after"]),
            "before": answers["before"][differ[0]] if differ else None,
            "after": answers["after"][differ[0]] if differ else None,
        },
    }


def _recs_worker(home: Path) -> None:
    """``--timing-worker``: load the recommendation server, then time calls named on stdin.

    Each stdin line is ``one I`` (the I-th customer alone) or ``batch I`` (the I-th batch of
    64); the answer line is the call's process CPU in milliseconds. Both sides of
    :func:`interleaved` draw the same customers (:func:`_recs_with_picks`), so they serve the
    same calls.
    """
    _, recs, _, picks = _recs_with_picks(home, 64 * 64)
    calls = {
        "one": lambda i: recs.recommend_many([picks[i % len(picks)]], 10, synthetic=True),
        "batch": lambda i: recs.recommend_many(
            picks[i * 64 % len(picks) :][:64], 10, synthetic=True
        ),
    }
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            kind, i = line.split()
            started = time.process_time()
            calls[kind](int(i))
            print(f"{(time.process_time() - started) * 1000.0:.4f}", flush=True)
    finally:
        recs.close()


TURN = 8
"""Calls one side makes in a row in :func:`interleaved` before the other side's turn."""


def interleaved(base: Path, home: Path, calls: int) -> dict[str, Any]:
    """The two recommendation budgets of two checkouts, measured call by call in turn.

    Both servers are loaded in their own processes at once; the coordinator asks one for
    :data:`TURN` calls, then the other (who goes first alternates), so a slow minute of a shared
    machine falls on both alike. Only one computes at a time (the other waits on its pipe).
    Reported per side: the median of the warm calls (the second half of each turn, as in a busy
    server) and of each turn's first call (after the other side's work, as after idling).

    Args:
        base: The checkout to compare with.
        home: The home both serve.
        calls: Single-customer calls; batches of 64 are an eighth as many (at least 60).

    Returns:
        Medians per side and the ratios, per budget.
    """
    import statistics

    workers: dict[str, subprocess.Popen[str]] = {}
    for name, code in (("before", base), ("after", ROOT)):
        argv = [sys.executable, str(Path(__file__).resolve()), "--home", str(home)]
        argv += ["--timing-worker", "--code", str(code.resolve())]
        workers[name] = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    out: dict[str, Any] = {}
    try:
        for name, proc in workers.items():
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"the {name} worker did not start (exit {proc.wait()})")

        def call(name: str, kind: str, i: int) -> float:
            proc = workers[name]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{kind} {i}\n")
            proc.stdin.flush()
            return float(proc.stdout.readline())

        order = ["before", "after"]
        for kind, n, per in (("one", calls, 1), ("batch", max(calls // 8, 60), 64)):
            for i in range(20):  # warm-up, both sides
                for name in order:
                    call(name, kind, i)
            # turns of TURN calls: the first of a turn follows the other side's work (a server
            # that was idle), the last half runs warm (a busy one)
            first: dict[str, list[float]] = {"before": [], "after": []}
            warm: dict[str, list[float]] = {"before": [], "after": []}
            for t in range(n // TURN):
                for name in order if t % 2 == 0 else order[::-1]:
                    for j in range(TURN):
                        ms = call(name, kind, 20 + t * TURN + j) / per
                        if j == 0:
                            first[name].append(ms)
                        elif j >= TURN // 2:
                            warm[name].append(ms)
            key = "one_recommendation" if kind == "one" else "batch_of_64_per_customer"
            out[key] = {"calls": n, "turn": TURN}
            for label, spent in (("warm", warm), ("first_of_turn", first)):
                before = statistics.median(spent["before"])
                after = statistics.median(spent["after"])
                out[key][label] = {
                    "before_median_ms": round(before, 4),
                    "after_median_ms": round(after, 4),
                    "after_over_before": round(after / before, 3),
                }
    finally:
        for proc in workers.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
    return out


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
    ap.add_argument(
        "--only",
        choices=("all", "inprocess", "http", "interleaved"),
        default="all",
        help="Run only the in-process budgets, only the HTTP runs, or (with --baseline) only "
        "the call-by-call comparison of the recommendation budgets.",
    )
    ap.add_argument("--calls", type=int, default=2000, help="Calls per in-process measurement.")
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="Another ShelfOps checkout (src/ and serving/) to serve beside this one as 'before' "
        "(with --only inprocess: its in-process budgets and answers beside this one's).",
    )
    ap.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="Checkout whose src/ shelfops is imported from (default: this one).",
    )
    ap.add_argument(
        "--timing-worker",
        action="store_true",
        help="Internal: serve timed recommendation calls named on stdin (see interleaved()).",
    )
    ap.add_argument(
        "--answers",
        type=Path,
        default=None,
        help="With --only inprocess: also write every served answer of the home here (JSON).",
    )
    args = ap.parse_args()
    home = args.home.resolve()
    _ensure_models(home)
    sys.path[:0] = [str(args.code.resolve() / "src"), str(ROOT)]  # shelfops, tests' redis
    figures: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "home": str(home),
    }
    if args.timing_worker:
        _recs_worker(home)
        return 0
    if args.only == "interleaved":
        if not args.baseline:
            raise SystemExit("--only interleaved compares with --baseline DIR")
        figures["interleaved"] = interleaved(args.baseline, home, args.calls)
        figures["load_average"] = os.getloadavg()
        text = json.dumps(figures, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0
    if args.only == "inprocess" and args.baseline:
        print("in-process budgets, before and after ...", flush=True)
        figures["inprocess"] = inprocess_side_by_side(args.baseline, home, args.calls)
        print("recommendation budgets, before and after call by call ...", flush=True)
        figures["inprocess"]["interleaved"] = interleaved(args.baseline, home, args.calls)
        figures["load_average"] = os.getloadavg()
    elif args.only in ("all", "inprocess"):
        print("in-process budgets ...", flush=True)
        figures["inprocess"] = inprocess(home, args.calls)
        import shelfops

        figures["code"] = str(Path(shelfops.__file__).parents[1])
        if args.answers:
            args.answers.write_text(json.dumps(served_answers(home)))
    if args.only == "inprocess":
        text = json.dumps(figures, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0
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
            ours_port, peer_port, base_port = free_port(), free_port(), free_port()
            argv, env = serve_command(settings, "recs", ours_port)
            procs.append(
                _start([*_pin(0), *argv], os.environ | env, project_root(), out / "ours.log")
            )
            peer_argv = [
                *_pin(0),
                sys.executable,
                str(ROOT / "benchmarks" / "kserve_peer.py"),
                "--home",
                str(home),
                "--port",
                str(peer_port),
            ]
            procs.append(_start(peer_argv, dict(os.environ), ROOT, out / "peer.log"))
            if args.baseline:
                base = args.baseline.resolve()
                argv, env = serve_command(settings, "recs", base_port)
                argv[argv.index("--working-dir") + 1] = str(base)
                env["PYTHONPATH"] = os.pathsep.join([str(base / "src"), str(base)])
                procs.append(_start([*_pin(0), *argv], os.environ | env, base, out / "base.log"))
            ours, peer = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
            before = f"http://127.0.0.1:{base_port}"
            for url, proc in zip((ours, peer, before), procs, strict=False):
                if not wait_ready(url, proc, 240):
                    raise SystemExit(f"{url} did not become ready (logs in {out})")
            plan: list[tuple[str, str, str, subprocess.Popen[bytes] | None]] = [
                ("floor", "FloorUser", "http://unused", None),
                ("shelfops_v2", "ShelfOpsV2User", ours, procs[0]),
                ("shelfops_recommend", "ShelfOpsRecommendUser", ours, procs[0]),
                ("kserve_v2", "KServeV2User", peer, procs[1]),
            ]
            if args.baseline:
                plan += [
                    ("before_v2", "ShelfOpsV2User", before, procs[2]),
                    ("before_recommend", "ShelfOpsRecommendUser", before, procs[2]),
                ]
            for n in users:
                for name, user, host, proc in plan:
                    print(f"{name} at {n} users, {args.think}s think time ...", flush=True)
                    results[f"{name}@{n}"] = _locust(
                        user, host, n, args.seconds, home, out, args.think, proc
                    )
            # Capacity: the same users without think time, until the server saturates.
            n = max(users)
            for name, user, host, proc in plan[1:]:
                print(f"{name} saturated at {n} users ...", flush=True)
                results[f"{name}@{n}-saturated"] = _locust(
                    user, host, n, args.seconds, home, out, 0, proc
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
    ratios["saturated"]["shelfops_cpu_per_request_over_kserve"] = round(
        saturated["shelfops_v2"]["server_cpu_ms_per_request"]
        / max(saturated["kserve_v2"]["server_cpu_ms_per_request"], 1e-9),
        2,
    )
    ours_rec = results[f"shelfops_recommend@{top}-saturated"]
    ratios["saturated"]["recommend_rps_over_kserve_rps"] = round(
        ours_rec["rps"] / max(saturated["kserve_v2"]["rps"], 1e-9), 2
    )
    if args.baseline:
        for kind in ("v2", "recommend"):
            now, was = (results[f"{k}_{kind}@{top}-saturated"] for k in ("shelfops", "before"))
            ratios["saturated"][f"{kind}_rps_now_over_before"] = round(
                now["rps"] / max(was["rps"], 1e-9), 2
            )
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
    at50 = ratios.get(f"{top}_users", {})
    ours_top = results[f"shelfops_v2@{top}"]
    over_floor = at50.get("shelfops_p50_minus_floor_ms")
    ratios["budgets"] = {
        "p50_minus_floor_ms": {
            "figure": over_floor,
            "budget": 2.0,
            "met": over_floor is not None and over_floor <= 2.0,  # 0.0 (at the floor) is met
        },
        "capacity_over_kserve": {
            "figure": ratios["saturated"]["shelfops_rps_over_kserve_rps"],
            "budget": 1.5,
            "met": ratios["saturated"]["shelfops_rps_over_kserve_rps"] >= 1.5
            and ratios["saturated"]["shelfops_p95_over_kserve_p95"] <= 1.0,
        },
        f"p95_at_{top}_users_ms": {
            "figure": ours_top["p95_ms"],
            "budget": 25.0,
            "ratio": round(ours_top["p95_ms"] / 25.0, 2),
            "met": ours_top["p95_ms"] <= 25.0,
        },
    }
    figures |= {
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
