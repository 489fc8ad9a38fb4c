"""Rollout state (resumable, one JSON file per model and target) and the append-only history.

Layout under ``<home>/rollout``::

    history.jsonl              every transition of every rollout, one JSON object a line
    <target>/<model>.json      the current state of that model's rollout (atomic rewrites)
    <target>/<model>.lock      held (``flock``) while a command changes that model

A crash between two writes leaves the last completed transition on disk, so running the same
command again continues from there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Phase = Literal["stable", "deploying", "canary", "promoting", "rolling_back"]
IN_FLIGHT: tuple[Phase, ...] = ("deploying", "canary", "promoting", "rolling_back")


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string with seconds precision."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_rollout_id() -> str:
    """A short unique id for one rollout."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def default_actor(configured: str | None) -> str:
    """Who triggers a transition: the configured actor, the CI actor, or the OS user."""
    if configured:
        return configured
    for var in ("GITHUB_ACTOR", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def default_trigger() -> str:
    """What triggers a transition: a GitHub Actions run, or the CLI."""
    run = os.environ.get("GITHUB_RUN_ID")
    if os.environ.get("GITHUB_ACTIONS") == "true" and run:
        return f"github-actions:{os.environ.get('GITHUB_WORKFLOW', 'workflow')}#{run}"
    return "cli"


@dataclass
class RolloutState:
    """Where one model's rollout stands on one target.

    Attributes:
        model: Model name (``recs`` or ``demand``).
        target: Backend name (``local`` or ``kserve``).
        phase: ``stable`` when nothing is in flight, else the step in progress.
        stable_version: Version that takes the traffic the canary does not.
        canary_version: Version being rolled out, if any.
        canary_percent: Traffic share of the canary.
        step: Number of traffic steps whose gate has passed.
        steps: The traffic steps of the rollout in flight.
        rollout_id: Id of the rollout in flight (or the last one).
        previous_versions: Earlier stable versions, oldest first (rollback targets).
        updated_at: Time of the last write.
    """

    model: str
    target: str
    phase: Phase = "stable"
    stable_version: str | None = None
    canary_version: str | None = None
    canary_percent: int = 0
    step: int = 0
    steps: list[int] = field(default_factory=list)
    rollout_id: str | None = None
    previous_versions: list[str] = field(default_factory=list)
    updated_at: str = ""

    @property
    def in_flight(self) -> bool:
        """Whether a rollout or rollback has started and not finished."""
        return self.phase in IN_FLIGHT

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        """Rebuild from :meth:`to_dict` output (unknown keys ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class RolloutLocked(RuntimeError):
    """Another command is changing the same model on the same target."""


class StateStore:
    """Reads and writes rollout state and history under one folder.

    Args:
        root: The rollout folder (``<home>/rollout``).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def history_path(self) -> Path:
        """The append-only history file."""
        return self.root / "history.jsonl"

    def state_path(self, target: str, model: str) -> Path:
        """The state file of one model on one target."""
        return self.root / target / f"{model}.json"

    def load(self, target: str, model: str) -> RolloutState | None:
        """The recorded state, or None when nothing was recorded yet."""
        path = self.state_path(target, model)
        if not path.is_file():
            return None
        return RolloutState.from_dict(json.loads(path.read_text()))

    def save(self, state: RolloutState) -> None:
        """Write the state atomically (temporary file, fsync, rename)."""
        state.updated_at = now_iso()
        path = self.state_path(state.target, state.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("w") as handle:
            json.dump(state.to_dict(), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def record(self, event: str, state: RolloutState, **details: Any) -> dict[str, Any]:
        """Append one transition to the history.

        Args:
            event: What happened (``canary_started``, ``traffic``, ``gate``, ``promoted``, ...).
            state: The state after the transition.
            **details: Extra fields: ``actor``, ``trigger``, ``reason``, ``gate`` figures, ...

        Returns:
            The recorded entry.
        """
        entry: dict[str, Any] = {
            "at": now_iso(),
            "event": event,
            "model": state.model,
            "target": state.target,
            "rollout_id": state.rollout_id,
            "stable_version": state.stable_version,
            "canary_version": state.canary_version,
            "canary_percent": state.canary_percent,
            "phase": state.phase,
            **details,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with self.history_path.open("a+b") as handle:
            # A line torn by a crash must not swallow this entry: start on a fresh line.
            torn = False
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            line = json.dumps(entry, default=str) + "\n"
            handle.write((("\n" if torn else "") + line).encode())
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def history(
        self, model: str | None = None, target: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded transitions, oldest first, optionally filtered and limited to the newest."""
        if not self.history_path.is_file():
            return []
        entries = []
        for line in self.history_path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if model and entry.get("model") != model:
                continue
            if target and entry.get("target") != target:
                continue
            entries.append(entry)
        return entries[-limit:] if limit else entries

    @contextlib.contextmanager
    def lock(self, target: str, model: str) -> Iterator[None]:
        """Hold the per-model lock; fail at once when another command holds it.

        Raises:
            RolloutLocked: If another process is changing this model.
        """
        path = self.root / target / f"{model}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RolloutLocked(
                    f"{model} on {target} is being changed by {holder}; wait for it to finish "
                    "(or check `shelfops rollout status`)"
                ) from exc
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
