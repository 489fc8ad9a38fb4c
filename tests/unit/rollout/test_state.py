"""Rollout state files, history and the per-model lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfops.rollout.state import RolloutLocked, RolloutState, StateStore, default_actor

pytestmark = pytest.mark.unit


def test_state_round_trips_and_writes_atomically(tmp_path: Path) -> None:
    """A saved state loads back equal, and no temporary file is left behind."""
    store = StateStore(tmp_path)
    state = RolloutState(
        model="recs",
        target="local",
        phase="canary",
        stable_version="a",
        canary_version="b",
        canary_percent=50,
        step=1,
        steps=[10, 50, 100],
    )
    store.save(state)
    loaded = store.load("local", "recs")
    assert loaded == state and loaded.in_flight
    assert [p.name for p in (tmp_path / "local").iterdir()] == ["recs.json"]
    assert store.load("kserve", "recs") is None


def test_history_filters_and_survives_a_torn_line(tmp_path: Path) -> None:
    """History keeps order, filters by model and target, and skips a line cut by a crash."""
    store = StateStore(tmp_path)
    recs = RolloutState(model="recs", target="local")
    demand = RolloutState(model="demand", target="kserve")
    store.record("canary_started", recs, actor="ana", trigger="cli", reason="deploy v2")
    store.record("promoted", demand, actor="ci", trigger="gha")
    with store.history_path.open("a") as handle:
        handle.write('{"event": "traf')
    store.record("rolled_back", recs, actor="ana", trigger="gate", gate={"passed": False})
    assert [e["event"] for e in store.history()] == ["canary_started", "promoted", "rolled_back"]
    assert [e["event"] for e in store.history(model="recs")] == ["canary_started", "rolled_back"]
    assert [e["event"] for e in store.history(target="kserve")] == ["promoted"]
    assert store.history(limit=1)[0]["gate"] == {"passed": False}
    assert store.history()[0]["actor"] == "ana" and store.history()[0]["at"]


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    """While one command holds a model's lock, another fails at once with advice."""
    store = StateStore(tmp_path)
    with store.lock("local", "recs"):
        with pytest.raises(RolloutLocked, match="being changed"), store.lock("local", "recs"):
            pass
        with store.lock("local", "demand"):
            pass
    with store.lock("local", "recs"):
        pass


def test_actor_prefers_configuration_then_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded actor is the configured one, else GITHUB_ACTOR, else the OS user."""
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert default_actor("sre-bob") == "sre-bob"
    assert default_actor(None) == "octocat"
