"""The rollout engine: steps, gate, promotion, automatic rollback, resume and idempotence."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfops.rollout.engine import RolloutEngine, RolloutError
from shelfops.rollout.state import StateStore
from shelfops.settings import RolloutSettings

from .fakes import FakeBackend, ScriptedGate

pytestmark = pytest.mark.unit


def _engine(tmp_path: Path, backend: FakeBackend, gate: ScriptedGate) -> RolloutEngine:
    config = RolloutSettings(steps=[10, 50, 100], ready_timeout_s=1)
    return RolloutEngine(backend, StateStore(tmp_path), gate, config, actor="tester")


def _events(tmp_path: Path) -> list[str]:
    return [e["event"] for e in StateStore(tmp_path).history()]


@pytest.fixture()
def serving_v1(tmp_path: Path) -> FakeBackend:
    """A backend where v1 is already deployed and stable (through the engine)."""
    backend = FakeBackend()
    _engine(tmp_path, backend, ScriptedGate()).deploy("recs", "v1")
    backend.calls.clear()
    return backend


def test_first_deployment_gates_alone_then_promotes(tmp_path: Path) -> None:
    """With nothing stable, the only step is 100% and the gate has no stable to compare with."""
    backend, gate = FakeBackend(), ScriptedGate()
    result = _engine(tmp_path, backend, gate).deploy("recs", "v1")
    assert result.outcome == "promoted" and result.state.stable_version == "v1"
    ((canary_url, stable_url, label),) = gate.runs
    assert (canary_url, stable_url) == ("http://v1", None)
    assert label == f"recs-v1-{result.state.rollout_id}-step100"
    assert ("traffic", 100) not in backend.calls  # nothing to split with


def test_healthy_canary_steps_and_is_promoted(tmp_path: Path, serving_v1: FakeBackend) -> None:
    """v2 goes 10 -> 50 -> 100 with a gate against v1 at each step, then is promoted."""
    gate = ScriptedGate()
    result = _engine(tmp_path, serving_v1, gate).deploy("recs", "v2")
    assert result.outcome == "promoted" and result.ok
    assert [c for c in serving_v1.calls if c[0] == "traffic"] == [
        ("traffic", 10),
        ("traffic", 50),
        ("traffic", 100),
    ]
    assert [r[1] for r in gate.runs] == ["http://v1"] * 3
    assert result.state.stable_version == "v2" and result.state.previous_versions == ["v1"]
    history = StateStore(tmp_path).history()
    promoted = history[-1]
    assert promoted["event"] == "promoted" and promoted["actor"] == "tester"
    assert promoted["previous"] == "v1" and "promotion_s" in promoted
    gates = [e for e in history if e["event"] == "gate"]
    assert len(gates) == 4 and gates[-1]["gate"]["canary"]["p95_ms"] == 20.0


def test_failed_gate_rolls_back_automatically(tmp_path: Path, serving_v1: FakeBackend) -> None:
    """A breach at 50% sends traffic back to v1, drops v2, and records the gate as trigger."""
    result = _engine(tmp_path, serving_v1, ScriptedGate(fail_at={50})).deploy("recs", "v2")
    assert result.outcome == "rolled_back" and not result.ok and "p95 900" in result.reason
    assert serving_v1.calls[-1] == ("rollback", "v1", "v2")
    assert ("traffic", 100) not in serving_v1.calls
    last = StateStore(tmp_path).history()[-1]
    assert last["event"] == "rolled_back" and last["trigger"] == "gate"
    assert last["stable_version"] == "v1" and last["dropped"] == "v2"
    assert result.state.phase == "stable" and result.state.canary_version is None


def test_never_ready_canary_gets_no_traffic(tmp_path: Path, serving_v1: FakeBackend) -> None:
    """A canary that never becomes ready is rolled back before any traffic moves to it."""
    serving_v1.never_ready.add("v2")
    gate = ScriptedGate()
    result = _engine(tmp_path, serving_v1, gate).deploy("recs", "v2")
    assert result.outcome == "rolled_back" and "not ready" in result.reason
    assert not [c for c in serving_v1.calls if c[0] == "traffic"] and not gate.runs


def test_crash_mid_rollout_resumes_from_recorded_step(
    tmp_path: Path, serving_v1: FakeBackend
) -> None:
    """After a crash while moving to 50%, re-running continues at 50% without redoing 10%."""
    serving_v1.crash_on = ("traffic", 50)
    gate = ScriptedGate()
    with pytest.raises(KeyboardInterrupt):
        _engine(tmp_path, serving_v1, gate).deploy("recs", "v2")
    state = StateStore(tmp_path).load("local", "recs")
    assert state is not None and state.phase == "canary" and state.step == 1
    serving_v1.calls.clear()
    result = _engine(tmp_path, serving_v1, gate).deploy("recs", "v2")
    assert result.outcome == "promoted"
    assert ("start", "v2") not in serving_v1.calls
    assert [c for c in serving_v1.calls if c[0] == "traffic"] == [("traffic", 50), ("traffic", 100)]
    assert "resumed" in _events(tmp_path)


def test_deploying_the_stable_version_again_is_a_noop(
    tmp_path: Path, serving_v1: FakeBackend
) -> None:
    """Re-running a finished deploy changes nothing and records a noop."""
    result = _engine(tmp_path, serving_v1, ScriptedGate()).deploy("recs", "v1")
    assert result.outcome == "noop" and not serving_v1.calls
    assert _events(tmp_path)[-1] == "noop"


def test_other_version_in_flight_is_refused(tmp_path: Path, serving_v1: FakeBackend) -> None:
    """A second version cannot start while another canary is in flight."""
    serving_v1.crash_on = ("traffic", 10)
    with pytest.raises(KeyboardInterrupt):
        _engine(tmp_path, serving_v1, ScriptedGate()).deploy("recs", "v2")
    with pytest.raises(RolloutError, match="still rolling out"):
        _engine(tmp_path, serving_v1, ScriptedGate()).deploy("recs", "v3")


def test_manual_promote_and_rollback(tmp_path: Path, serving_v1: FakeBackend) -> None:
    """promote finishes an in-flight canary; rollback then returns to the previous version."""
    serving_v1.crash_on = ("traffic", 50)
    with pytest.raises(KeyboardInterrupt):
        _engine(tmp_path, serving_v1, ScriptedGate()).deploy("recs", "v2")
    engine = _engine(tmp_path, serving_v1, ScriptedGate())
    assert engine.promote("recs").state.stable_version == "v2"
    with pytest.raises(RolloutError, match="no ready canary"):
        engine.promote("recs")
    back = engine.rollback("recs", reason="incident 42")
    assert back.state.stable_version == "v1" and serving_v1.calls[-1] == ("rollback", "v1", "v2")
    last = StateStore(tmp_path).history()[-1]
    assert last["reason"] == "incident 42" and last["trigger"] == "cli"
    with pytest.raises(RolloutError, match="no earlier version"):
        engine.rollback("recs")
    assert engine.rollback("recs", to_version="v2").state.stable_version == "v2"
