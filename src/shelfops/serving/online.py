"""Online feature reads with a deadline: a slow or unreachable store means a fallback, not a 5xx.

Reads go to the Feast online store (SQLite locally, Redis in the cluster) by ``view:feature``
references resolved once from the FeatureService, so the feature lists still live only in
``shelfops.features.definitions``. A read runs on the calling thread and the store itself keeps
the deadline (:class:`~shelfops.features.store.FeatureRepo` with ``read_timeout_s``: Redis
socket timeouts; on SQLite a bounded lock wait and an interrupted query), so a request pays no
hand-off to another thread; the caller gets ``None`` and a reason it can report and count. After
a failed or timed-out read the store is opened afresh (at most once per ``reopen_after_s``), so a
store that comes back is used again without restarting the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shelfops.features.store import FeatureRepo

log = logging.getLogger(__name__)

Rows = dict[str, list[Any]]


class OnlineReader:
    """Reads feature references for entity rows, giving up after a deadline."""

    def __init__(
        self,
        repo_factory: Callable[[float], FeatureRepo],
        timeout_s: float,
        reopen_after_s: float = 1.0,
    ) -> None:
        """Create the reader; the store is opened on first use (and again after a failure).

        Args:
            repo_factory: Builds the feature repository for a read deadline in seconds
                (``lambda t: FeatureRepo(settings, read_timeout_s=t)``).
            timeout_s: Longest wait for one request-path read.
            reopen_after_s: Shortest time between two reopenings of a failing store (opening
                reads the Feast registry, too slow to repeat on every request of an outage).
        """
        self._factory = repo_factory
        self._repos: dict[float, FeatureRepo] = {}
        self._failed_at: float | None = None
        self._lock = threading.Lock()
        self.timeout_s = timeout_s
        self.reopen_after_s = reopen_after_s
        self.reopened = 0
        """How many times the store was opened again after a failure."""

    def repo(self, timeout_s: float | None = None) -> FeatureRepo:
        """The feature repository for a deadline (default: the request deadline).

        Opened on first use, and again (every deadline's) once a failure is old enough.
        """
        timeout = timeout_s or self.timeout_s
        with self._lock:
            failed = self._failed_at
            if (
                self._repos
                and failed is not None
                and time.monotonic() - failed >= self.reopen_after_s
            ):
                self._repos = {}
                self._failed_at = None
                self.reopened += 1
            repo = self._repos.get(timeout)
            if repo is None:
                repo = self._repos[timeout] = self._factory(timeout)
            return repo

    def _failed(self) -> None:
        with self._lock:
            if self._failed_at is None:
                self._failed_at = time.monotonic()

    def _succeeded(self) -> None:
        if self._failed_at is not None:
            with self._lock:
                self._failed_at = None

    def refs(self, service: str) -> dict[str, list[str]]:
        """The service's feature references by view (reads the Feast registry).

        Raises:
            Exception: Whatever the store raised; the store is reopened on a later call.
        """
        try:
            return self.repo().feature_refs(service)
        except Exception:
            self._failed()
            raise

    def read(
        self,
        refs: list[str],
        entity_rows: list[dict[str, Any]],
        timeout_s: float | None = None,
    ) -> tuple[Rows | None, str]:
        """Read features on this thread, or explain why not within the deadline.

        Args:
            refs: ``view:feature`` references.
            entity_rows: Join keys, one dict per entity.
            timeout_s: Deadline for this read (default: the request deadline).

        Returns:
            ``(columns, "")`` on success; ``(None, reason)`` with reason ``online_store_timeout``
            or ``online_store_error``.
        """
        try:
            rows = self.repo(timeout_s).online_refs(refs, entity_rows)
        except TimeoutError as exc:  # OnlineReadTimeout, or a connect timeout
            self._failed()
            log.warning(
                "online store did not answer within %.0f ms: %s",
                (timeout_s or self.timeout_s) * 1000,
                exc,
            )
            return None, "online_store_timeout"
        except Exception as exc:  # any store failure becomes a fallback, never a 5xx
            self._failed()
            log.warning("online store read failed: %s", exc)
            return None, "online_store_error"
        self._succeeded()
        return rows, ""

    def close(self) -> None:
        """Forget the open stores (nothing runs in the background)."""
        with self._lock:
            self._repos = {}
