"""In-memory backend and scripted gate for engine tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from shelfops.rollout.backends.base import Observation, Revision
from shelfops.rollout.gate import Check, GateVerdict, LoadStats


@dataclass
class FakeBackend:
    """Revisions and weights in memory; records every call; can crash once on a chosen call."""

    name: str = "local"
    running: dict[str, bool] = field(default_factory=dict)  # version -> ready
    weights: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[object, ...]] = field(default_factory=list)
    never_ready: set[str] = field(default_factory=set)
    crash_on: tuple[object, ...] | None = None
    stable: str | None = None
    canary: str | None = None

    def _call(self, *call: object) -> None:
        self.calls.append(call)
        if self.crash_on == call:
            self.crash_on = None
            raise KeyboardInterrupt("simulated crash")

    def resolve_version(self, model: str, version: str) -> str:
        return "v-latest" if version == "latest" else version

    def observe(self, model: str) -> Observation:
        revs = tuple(
            Revision(v, f"http://{v}", ready, self.weights.get(v, 0))
            for v, ready in self.running.items()
        )
        return Observation(
            model,
            "http://endpoint",
            self.stable,
            self.canary,
            self.weights.get(self.canary or "", 0),
            revs,
        )

    def start_canary(self, model: str, version: str, stable: str | None) -> None:
        self._call("start", version)
        self.running[version] = version not in self.never_ready
        self.canary = version if stable else None

    def wait_ready(self, model: str, version: str, timeout_s: float) -> bool:
        self._call("wait", version)
        return self.running.get(version, False)

    def set_traffic(self, model: str, stable: str | None, canary: str, percent: int) -> None:
        self._call("traffic", percent)
        self.weights = {stable or "": 100 - percent, canary: percent}

    def promote(self, model: str, version: str, previous: str | None) -> None:
        self._call("promote", version)
        self.weights = {version: 100}
        self.stable, self.canary = version, None

    def rollback(self, model: str, to_version: str, drop: str | None) -> None:
        self._call("rollback", to_version, drop)
        self.running.pop(drop or "", None)
        if to_version:
            self.running[to_version] = True
        self.weights = {to_version: 100} if to_version else {}
        self.stable, self.canary = to_version or None, None


@dataclass
class ScriptedGate:
    """Passes unless told to fail at a given traffic step."""

    fail_at: set[int] = field(default_factory=set)
    runs: list[tuple[str, str | None, str]] = field(default_factory=list)

    def run(
        self,
        model: str,
        canary_url: str,
        stable_url: str | None,
        label: str,
        canary_version: str = "",
        stable_version: str | None = None,
    ) -> GateVerdict:
        self.runs.append((canary_url, stable_url, label))
        step = int(label.rsplit("step", 1)[1])
        p95 = 900.0 if step in self.fail_at else 20.0
        stats = LoadStats(100, 0, 10, p95, p95, 50)
        ok = step not in self.fail_at
        check = Check("p95", p95, 500, ok, f"p95 {p95} ms (limit 500 ms)")
        return GateVerdict(ok, [check], stats, stats if stable_url else None)
