"""Who may use the console: viewer and editor tokens, sessions, and CSRF tokens.

* Tokens come from the environment (``SHELFOPS_CONSOLE_VIEWER_TOKEN`` and
  ``SHELFOPS_CONSOLE_EDITOR_TOKEN``); there is no default password. Signing in with a token
  starts a server-side session (an unguessable cookie, ``HttpOnly``, ``SameSite=Strict``).
* Without tokens the console is a single-user tool: it only starts on a loopback address, and
  the local user is an editor. :func:`check_bind` refuses any other address.
* Every change is a POST that must carry the session's CSRF token (a hidden form field), and
  only editors may make one.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

Role = Literal["viewer", "editor"]
SESSION_COOKIE = "shelfops_console_session"
LOGIN_COOKIE = "shelfops_console_login"
SESSION_TTL_S = 12 * 3600


class ConsoleAccessError(ValueError):
    """The console's access settings are unsafe or incomplete; the message says what to set."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, viewer: SecretStr | None, editor: SecretStr | None) -> None:
    """Refuse to serve beyond loopback without both tokens, or with equal tokens.

    Raises:
        ConsoleAccessError: The combination is unsafe.
    """
    tokens = [t.get_secret_value() for t in (viewer, editor) if t is not None]
    if any(len(t) < 12 for t in tokens):
        raise ConsoleAccessError(
            "console tokens must be at least 12 characters; generate them with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )
    if len(tokens) == 2 and tokens[0] == tokens[1]:
        raise ConsoleAccessError(
            "SHELFOPS_CONSOLE_VIEWER_TOKEN and SHELFOPS_CONSOLE_EDITOR_TOKEN must differ"
        )
    if not is_loopback(host) and len(tokens) < 2:
        raise ConsoleAccessError(
            f"refusing to serve the console on {host} without access control: set "
            "SHELFOPS_CONSOLE_VIEWER_TOKEN and SHELFOPS_CONSOLE_EDITOR_TOKEN (or bind 127.0.0.1)"
        )


@dataclass
class Session:
    """One signed-in browser."""

    role: Role
    actor: str
    csrf: str
    expires: float

    @property
    def can_edit(self) -> bool:
        """Editors may change rules and generate summaries."""
        return self.role == "editor"


class Access:
    """Token checks and the session table (in memory: a restart signs everyone out)."""

    def __init__(self, viewer: SecretStr | None, editor: SecretStr | None, local_user: str) -> None:
        self._viewer = viewer.get_secret_value() if viewer else None
        self._editor = editor.get_secret_value() if editor else None
        self.local_user = local_user
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """No tokens configured: the loopback single-user mode (the local user edits)."""
        return self._viewer is None and self._editor is None

    def role_for(self, token: str) -> Role | None:
        """The role a token grants (constant-time comparison), or None."""
        given = token.encode()
        if self._editor and hmac.compare_digest(given, self._editor.encode()):
            return "editor"
        if self._viewer and hmac.compare_digest(given, self._viewer.encode()):
            return "viewer"
        return None

    def start(self, role: Role, actor: str) -> tuple[str, Session]:
        """A new session id and its session."""
        sid = secrets.token_urlsafe(32)
        session = Session(role, actor, secrets.token_urlsafe(32), time.time() + SESSION_TTL_S)
        with self._lock:
            now = time.time()
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        """The live session of a cookie value, or None."""
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or session.expires < time.time():
                self._sessions.pop(sid, None)
                return None
            return session

    def end(self, sid: str | None) -> None:
        """Forget a session (sign out)."""
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether a submitted CSRF token is the session's (constant time)."""
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())
