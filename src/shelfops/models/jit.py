"""Compiling ShelfOps' numba kernels: one place for how (lazily, nogil, cached on disk)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def njit(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled by numba in nopython mode, releasing the GIL, cached on disk if possible.

    Callers compile once per process (behind ``functools.cache``), never at import time.
    ``nogil``: a server's worker threads run kernels in parallel. Without a writable cache
    directory the kernel is compiled in memory each process.
    """
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError as exc:  # no writable cache directory
        log.info("numba cache unavailable (%s); compiling without it", exc)
        return numba.njit(nogil=True)(fn)
