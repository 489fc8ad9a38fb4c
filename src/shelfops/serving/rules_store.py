"""Versioned merchandising rules in the home: apply, roll back, and who changed what when.

The console (and anyone with a shell) changes the rules the recommendation service applies
through this store; the service only reads :attr:`RulesStore.current_path`.

```
<home>/rules/merchandising.yaml      the rules in force (the service watches this file)
<home>/rules/versions/v0001.yaml     every applied version, never rewritten
<home>/audit/rules.jsonl             one JSON line per change: at, actor, action, version, changes
```

Applying validates the text with :class:`~shelfops.serving.rules.MerchRules` first (an invalid
version is refused and nothing is written), saves it as the next version, then replaces the
current file atomically (write to a temporary file, ``os.replace``), so the service never reads
a half-written file. Rolling back applies an earlier version's text as a new version, so the
history only grows. A current file edited by hand is not trusted blindly: :meth:`status` reports
whether it parses and whether it still matches the newest version.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelfops.serving.rules import MerchRules, RulesError
from shelfops.settings import ServingSettings, Settings

SHIPPED_RULES = Path(__file__).with_name("merchandising.yaml")
"""The rules shipped with ShelfOps, in force until someone applies their own."""

_VERSION = re.compile(r"^v(\d{4,})\.yaml$")


@dataclass(frozen=True)
class RulesVersion:
    """One applied version of the rules."""

    number: int
    path: Path

    @property
    def name(self) -> str:
        """``v0003``-style name."""
        return f"v{self.number:04d}"

    def text(self) -> str:
        """The YAML text of this version."""
        return self.path.read_text(encoding="utf-8")

    def rules(self) -> MerchRules:
        """The parsed rules of this version."""
        return MerchRules.from_text(self.text(), str(self.path))


@dataclass(frozen=True)
class RulesStatus:
    """Whether the rules file in force is valid and matches the newest applied version."""

    path: Path
    exists: bool
    valid: bool
    error: str | None
    latest: RulesVersion | None
    matches_latest: bool


def rules_yaml(rules: MerchRules) -> str:
    """The YAML text of ``rules`` (every field written out, in declaration order)."""
    import yaml

    return yaml.safe_dump(rules.model_dump(), sort_keys=False)


def diff_rules(before: MerchRules | None, after: MerchRules) -> dict[str, list[Any]]:
    """``{rule: [old, new]}`` for every rule whose value changes."""
    old = before.model_dump() if before is not None else {}
    return {k: [old.get(k), v] for k, v in after.model_dump().items() if old.get(k) != v}


class RulesStore:
    """The versioned rules of one ShelfOps home."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.root / "rules"
        self.versions_dir = self.root / "versions"
        self.audit_path = settings.root / "audit" / "rules.jsonl"

    @property
    def current_path(self) -> Path:
        """The rules file in force (the one the recommendation service reads)."""
        return self.root / "merchandising.yaml"

    def versions(self) -> list[RulesVersion]:
        """Every applied version, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = []
        for path in self.versions_dir.iterdir():
            m = _VERSION.match(path.name)
            if m:
                found.append(RulesVersion(int(m.group(1)), path))
        return sorted(found, key=lambda v: v.number)

    def version(self, number: int) -> RulesVersion:
        """One applied version.

        Raises:
            KeyError: No such version.
        """
        for v in self.versions():
            if v.number == number:
                return v
        raise KeyError(f"no rules version {number}; see the history for the versions there are")

    def status(self) -> RulesStatus:
        """Check the rules file in force (it may have been edited by hand)."""
        versions = self.versions()
        latest = versions[-1] if versions else None
        path = self.current_path
        if not path.is_file():
            return RulesStatus(path, False, True, None, latest, latest is None)
        text = path.read_text(encoding="utf-8")
        try:
            MerchRules.from_text(text, str(path))
        except RulesError as exc:
            return RulesStatus(path, True, False, str(exc), latest, False)
        return RulesStatus(
            path, True, True, None, latest, latest is not None and latest.text() == text
        )

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        if not self.audit_path.is_file():
            return []
        out = []
        for line in self.audit_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
        out.reverse()
        return out[:limit] if limit else out

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def apply(
        self,
        rules: MerchRules,
        actor: str,
        note: str = "",
        *,
        base: MerchRules | None,
        action: str = "apply",
        rollback_of: int | None = None,
    ) -> RulesVersion:
        """Save ``rules`` as the next version, put it in force, and audit the change.

        Args:
            rules: The validated rules.
            actor: Who applies them (recorded).
            note: Why (recorded).
            base: The rules in force before (for the recorded changes).
            action: ``apply`` or ``rollback`` (recorded).
            rollback_of: The version rolled back to, for ``rollback``.

        Returns:
            The new version.
        """
        text = rules_yaml(rules)
        with self._lock():
            existing = self.versions()
            number = (existing[-1].number if existing else 0) + 1
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            path = self.versions_dir / f"v{number:04d}.yaml"
            path.write_text(text, encoding="utf-8")
            _atomic_write(self.current_path, text)
            entry = {
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "actor": actor,
                "action": action,
                "version": number,
                "rollback_of": rollback_of,
                "changes": diff_rules(base, rules),
                "note": note,
            }
            self.audit_path.parent.mkdir(parents=True, exist_ok=True)
            with self.audit_path.open("a+b") as fh:
                # A line torn by a crash must not swallow this entry: start on a fresh line.
                torn = False
                if fh.seek(0, os.SEEK_END) > 0:
                    fh.seek(-1, os.SEEK_END)
                    torn = fh.read(1) != b"\n"
                fh.write((("\n" if torn else "") + json.dumps(entry) + "\n").encode())
                fh.flush()
                os.fsync(fh.fileno())
        return RulesVersion(number, path)

    def rollback(
        self, number: int, actor: str, note: str = "", *, base: MerchRules | None
    ) -> RulesVersion:
        """Put an earlier version back in force (as a new version).

        Raises:
            KeyError: No such version.
            RulesError: That version no longer parses (it was edited on disk).
        """
        rules = self.version(number).rules()
        return self.apply(rules, actor, note, base=base, action="rollback", rollback_of=number)


def serving_rules_path(settings: Settings, serving: ServingSettings) -> Path | None:
    """The rules file a recommendation service reads (and watches).

    ``SHELFOPS_SERVING_RULES_FILE`` when set; else the home's rules in force once a version has
    been applied (:attr:`RulesStore.current_path`); else the shipped defaults. None when the
    rules are inline YAML (``SHELFOPS_SERVING_RULES_YAML``, the Helm chart's values), which
    only change with a new deployment.
    """
    if serving.rules_yaml:
        return None
    if serving.rules_file is not None:
        return serving.rules_file
    current = RulesStore(settings).current_path
    return current if current.is_file() else SHIPPED_RULES


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
