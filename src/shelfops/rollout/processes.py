"""Detached local processes that outlive the CLI command, identified by pid and start time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessInfo:
    """A started process: pid plus its kernel start time (guards against pid reuse).

    Attributes:
        pid: Process id (also its session and process-group id).
        start_time: Field 22 of ``/proc/<pid>/stat`` at start (clock ticks since boot).
        port: Port it listens on.
        log: Its log file.
    """

    pid: int
    start_time: int
    port: int
    log: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessInfo:
        """Rebuild from :meth:`to_dict` output."""
        return cls(int(data["pid"]), int(data["start_time"]), int(data["port"]), str(data["log"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a process, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    """Collect a zombie child of this process, if it is one."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(info: ProcessInfo) -> bool:
    """Whether the recorded process still runs (same pid *and* same start time)."""
    _reap(info.pid)
    stat = _stat(info.pid)
    return stat is not None and stat[1] == info.start_time and stat[0] not in {"Z", "X"}


def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str], log: Path, port: int, cwd: Path | None = None
) -> ProcessInfo:
    """Start a process in its own session, output to ``log``; it survives this process.

    Args:
        argv: Command line.
        env: Complete environment.
        log: Log file (appended).
        port: Port the process will listen on (recorded).
        cwd: Working directory.

    Returns:
        Its pid and start time.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd=cwd,
        )
    stat = _stat(proc.pid)
    return ProcessInfo(proc.pid, stat[1] if stat else 0, port, str(log))


def stop_process(info: ProcessInfo, timeout_s: float = 10.0) -> None:
    """Stop a recorded process and its group: SIGTERM, then SIGKILL after ``timeout_s``."""
    if not is_alive(info):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(info):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(info.pid, signal.SIGKILL)
        for _ in range(100):
            if not is_alive(info):
                break
            time.sleep(0.02)
    # Workers of the group that outlived their parent.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(info.pid, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0
