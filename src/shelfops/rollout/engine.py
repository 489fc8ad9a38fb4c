"""The rollout engine: canary, traffic steps, gate at each step, promote or roll back.

The engine only talks to a :class:`~shelfops.rollout.backends.base.Backend` (local processes or
KServe) and a gate; every transition is written to the state file *before* the next action and
appended to the history, so re-running a command after a crash resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shelfops.rollout.backends.base import Backend, BackendError, Observation
from shelfops.rollout.gate import GateVerdict
from shelfops.rollout.state import RolloutState, StateStore, new_rollout_id
from shelfops.settings import RolloutSettings


class Gate(Protocol):
    """Anything that can judge a canary against the stable."""

    def run(
        self,
        model: str,
        canary_url: str,
        stable_url: str | None,
        label: str,
        canary_version: str = "",
        stable_version: str | None = None,
    ) -> GateVerdict:
        """Load both URLs and return the verdict."""
        ...


class RolloutError(RuntimeError):
    """A rollout command cannot proceed; the message says what to do."""


@dataclass
class RolloutResult:
    """Outcome of one engine command.

    Attributes:
        model: Model name.
        outcome: ``promoted``, ``rolled_back``, ``noop`` or ``resumed-promoted`` etc.
        state: The state after the command.
        verdicts: Gate verdicts in the order they ran.
        seconds: Wall time of the command.
        reason: Why it ended that way.
    """

    model: str
    outcome: str
    state: RolloutState
    verdicts: list[GateVerdict] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True unless the rollout ended in a rollback or failure."""
        return self.outcome in {"promoted", "noop", "rolled_back_manual"}


def _normalise_steps(steps: list[int]) -> list[int]:
    clean = sorted({int(s) for s in steps if 0 < int(s) <= 100})
    if not clean or clean[-1] != 100:
        clean.append(100)
    return clean


class RolloutEngine:
    """Drives canary rollouts of one target.

    Args:
        backend: Where revisions run.
        store: State and history storage.
        gate: The canary gate.
        config: Steps, timeouts and thresholds.
        actor: Who runs the command (recorded).
        trigger: What runs it (``cli``, a CI run, ``gate`` for automatic actions).
        on_event: Called with a one-line message at each transition (CLI output).
    """

    def __init__(
        self,
        backend: Backend,
        store: StateStore,
        gate: Gate,
        config: RolloutSettings,
        actor: str,
        trigger: str = "cli",
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.gate = gate
        self.config = config
        self.actor = actor
        self.trigger = trigger
        self.on_event = on_event or (lambda _msg: None)

    # -- state -------------------------------------------------------------------------------
    def state(self, model: str) -> RolloutState:
        """The recorded state, or one derived from what the backend runs."""
        state = self.store.load(self.backend.name, model)
        if state is not None:
            return state
        seen = self.backend.observe(model)
        state = RolloutState(model=model, target=self.backend.name)
        state.stable_version = seen.stable_version
        if seen.canary_version:
            state.phase = "canary"
            state.canary_version = seen.canary_version
            state.canary_percent = seen.canary_percent
        return state

    def status(self, model: str) -> tuple[RolloutState, Observation]:
        """Recorded state and what the backend sees."""
        return self.state(model), self.backend.observe(model)

    def _record(self, event: str, state: RolloutState, **details: Any) -> None:
        self.store.save(state)
        self.store.record(event, state, actor=self.actor, trigger=self.trigger, **details)
        percent = f" ({state.canary_percent}% canary)" if state.canary_version else ""
        reason = f": {details['reason']}" if details.get("reason") else ""
        self.on_event(f"{state.model} {event}{percent}{reason}")

    # -- commands ----------------------------------------------------------------------------
    def deploy(self, model: str, version: str) -> RolloutResult:
        """Roll ``version`` of ``model`` out as a canary; promote or roll back by the gate.

        Args:
            model: Model name.
            version: Version to roll out (``latest`` or a tag; the backend resolves it).

        Returns:
            The result: ``promoted``, ``noop`` (already stable) or ``rolled_back``.

        Raises:
            RolloutError: If another version's rollout is in flight.
        """
        started = time.perf_counter()
        version = self.backend.resolve_version(model, version)
        with self.store.lock(self.backend.name, model):
            state = self.state(model)
            if state.phase == "rolling_back":
                raise RolloutError(
                    f"a rollback of {model} was interrupted; finish it first with "
                    f"`shelfops rollout rollback --model {model} --target {self.backend.name}`"
                )
            if state.in_flight and state.canary_version != version:
                raise RolloutError(
                    f"{model} {state.canary_version} is still rolling out "
                    f"({state.canary_percent}%); promote or roll it back first "
                    f"(`shelfops rollout promote|rollback --model {model}`)"
                )
            seen = self.backend.observe(model)
            if not state.in_flight and seen.stable_version != state.stable_version:
                # The runtime was stopped or changed outside ShelfOps: trust what runs.
                state.stable_version = seen.stable_version
                self._record(
                    "reconciled", state, reason=f"backend serves {seen.stable_version or 'nothing'}"
                )
            if not state.in_flight and state.stable_version == version:
                self._record("noop", state, version=version, reason="already stable")
                return RolloutResult(model, "noop", state, seconds=_since(started))
            if not state.in_flight:
                state.phase = "deploying"
                state.canary_version = version
                state.canary_percent = 0
                state.step = 0
                state.steps = _normalise_steps(self.config.steps)
                state.rollout_id = new_rollout_id()
                self._record("canary_started", state, reason=f"deploy {version}")
            else:
                self._record("resumed", state, reason=f"continue at step {state.step}")
            return self._drive(state, started)

    def _drive(self, state: RolloutState, started: float) -> RolloutResult:
        model = state.model
        canary = state.canary_version
        assert canary is not None
        stable = state.stable_version
        verdicts: list[GateVerdict] = []
        if state.phase == "deploying":
            try:
                self.backend.start_canary(model, canary, stable)
            except BackendError as exc:
                return self._auto_rollback(state, f"canary did not start: {exc}", verdicts, started)
            self.on_event(f"{model} waiting for {canary} to be ready")
            if not self.backend.wait_ready(model, canary, self.config.ready_timeout_s):
                reason = f"canary {canary} not ready within {self.config.ready_timeout_s:.0f} s"
                return self._auto_rollback(state, reason, verdicts, started)
            state.phase = "canary"
            self._record("canary_ready", state)
        steps = state.steps or _normalise_steps(self.config.steps)
        if stable is None:
            steps = [100]  # first deployment: nothing to compare with, nothing to split
        while state.phase == "canary" and state.step < len(steps):
            percent = steps[state.step]
            if stable is not None:  # a first deployment has nothing to split with
                self.backend.set_traffic(model, stable, canary, percent)
                state.canary_percent = percent
                self._record("traffic", state)
            seen = self.backend.observe(model)
            canary_url = seen.url_of(canary)
            if canary_url is None:
                return self._auto_rollback(state, "canary has no URL", verdicts, started)
            self.on_event(f"{model} gate at {percent}%: Locust on {canary_url}")
            verdict = self.gate.run(
                model,
                canary_url,
                seen.url_of(stable) if stable else None,
                label=f"{model}-{canary}-{state.rollout_id}-step{percent}",
                canary_version=canary,
                stable_version=stable,
            )
            verdicts.append(verdict)
            self._record("gate", state, gate=verdict.to_dict(), reason=verdict.summary())
            if not verdict.passed:
                return self._auto_rollback(state, verdict.summary(), verdicts, started)
            state.step += 1
            self.store.save(state)
        return self._finish_promotion(state, verdicts, started, reason="every gate passed")

    def _finish_promotion(
        self, state: RolloutState, verdicts: list[GateVerdict], started: float, reason: str
    ) -> RolloutResult:
        canary = state.canary_version
        assert canary is not None
        previous = state.stable_version
        state.phase = "promoting"
        self.store.save(state)
        t0 = time.perf_counter()
        self.backend.promote(state.model, canary, previous)
        if previous and previous != canary:
            state.previous_versions = [v for v in state.previous_versions if v != previous]
            state.previous_versions.append(previous)
        state.phase = "stable"
        state.stable_version = canary
        state.canary_version = None
        state.canary_percent = 0
        state.step = 0
        self._record(
            "promoted",
            state,
            version=canary,
            previous=previous,
            reason=reason,
            promotion_s=round(time.perf_counter() - t0, 3),
        )
        return RolloutResult(state.model, "promoted", state, verdicts, _since(started), reason)

    def _auto_rollback(
        self, state: RolloutState, reason: str, verdicts: list[GateVerdict], started: float
    ) -> RolloutResult:
        self.trigger, saved = "gate", self.trigger
        try:
            state = self._rollback_locked(state, None, reason)
        finally:
            self.trigger = saved
        return RolloutResult(state.model, "rolled_back", state, verdicts, _since(started), reason)

    def stopped(self, model: str) -> None:
        """Record that the runtime of ``model`` was stopped (nothing serves it any more)."""
        with self.store.lock(self.backend.name, model):
            state = self.state(model)
            if state.stable_version and state.stable_version not in state.previous_versions:
                state.previous_versions.append(state.stable_version)
            state.phase, state.stable_version, state.canary_version = "stable", None, None
            state.canary_percent, state.step = 0, 0
            self._record("stopped", state, reason="runtime stopped")

    def promote(self, model: str) -> RolloutResult:
        """Promote the canary in flight now, skipping its remaining gates.

        Raises:
            RolloutError: If no canary is in flight.
        """
        started = time.perf_counter()
        with self.store.lock(self.backend.name, model):
            state = self.state(model)
            if not state.in_flight or state.canary_version is None or state.phase == "deploying":
                raise RolloutError(
                    f"no ready canary of {model} to promote (phase {state.phase}); "
                    f"start one with `shelfops rollout deploy --model {model} --version TAG`"
                )
            if state.phase == "rolling_back":
                raise RolloutError(f"{model} is rolling back; finish it with `rollout rollback`")
            return self._finish_promotion(state, [], started, reason="manual promotion")

    def rollback(
        self, model: str, to_version: str | None = None, reason: str = "manual rollback"
    ) -> RolloutResult:
        """Roll back: drop the canary in flight, or return to an earlier stable version.

        Args:
            model: Model name.
            to_version: Version to return to (default: the stable while a canary is in flight,
                else the previous stable version).
            reason: Why (recorded).

        Returns:
            The result (``rolled_back_manual``).

        Raises:
            RolloutError: If there is nothing to roll back to.
        """
        started = time.perf_counter()
        if to_version:
            to_version = self.backend.resolve_version(model, to_version)
        with self.store.lock(self.backend.name, model):
            state = self._rollback_locked(self.state(model), to_version, reason)
        return RolloutResult(model, "rolled_back_manual", state, [], _since(started), reason)

    def _rollback_locked(
        self, state: RolloutState, to_version: str | None, reason: str
    ) -> RolloutState:
        t0 = time.perf_counter()
        drop: str | None
        if state.in_flight and state.canary_version:
            target = to_version or state.stable_version
            drop = state.canary_version
        else:
            target = to_version or (
                state.previous_versions[-1] if state.previous_versions else None
            )
            drop = state.stable_version
        if target is None:
            if state.in_flight and state.canary_version:
                # First deployment failed: nothing to return to, retire the canary.
                target, drop = "", state.canary_version
            else:
                raise RolloutError(
                    f"{state.model} has no earlier version to roll back to; "
                    "pass --to VERSION to choose one"
                )
        if target == drop:
            raise RolloutError(f"{state.model} already serves {target}")
        state.phase = "rolling_back"
        self._record("rollback_started", state, to_version=target or None, reason=reason)
        self.backend.rollback(state.model, target, drop)
        old_stable = state.stable_version
        state.phase = "stable"
        state.stable_version = target or None
        state.canary_version = None
        state.canary_percent = 0
        state.step = 0
        if state.stable_version in state.previous_versions:
            state.previous_versions.remove(state.stable_version)
        if old_stable and old_stable not in (target, drop):
            state.previous_versions.append(old_stable)
        self._record(
            "rolled_back",
            state,
            to_version=target or None,
            dropped=drop,
            reason=reason,
            rollback_s=round(time.perf_counter() - t0, 3),
        )
        return state


def _since(started: float) -> float:
    return time.perf_counter() - started
