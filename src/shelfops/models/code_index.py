"""Item codes to item rows, many at once: a compiled hash table over the codes' UTF-8 bytes.

A batch of 64 customers carries about 1,900 history codes to map to the model's item rows. A
Python dict does it one code at a time, and on a large catalogue each lookup misses the CPU
cache three times (the dict's index, its entry, the key string it compares): 0.87 ms per batch
on The Complete Journey's 53,898 items, measured in a serving loop. Here the catalogue's codes
sit in one byte buffer with an open-addressing table of row numbers; a compiled probe hashes
each code's bytes (FNV-1a) and compares the bytes on a hash match, so the answer is exact, the
same as the dict's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shelfops.models.jit import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _find(
    buf: np.ndarray,
    ends: np.ndarray,
    keys: np.ndarray,
    bounds: np.ndarray,
    slots: np.ndarray,
    insert: bool,
) -> np.ndarray:
    """The row of each code of ``buf`` (code ``i`` ends at ``ends[i]``), -1 where unknown.

    With ``insert``, ``buf`` is the catalogue itself and each code is entered as row ``i`` (a
    later duplicate wins, as in a dict). Compiled by numba (:func:`_compiled`).
    """
    mask = np.uint64(len(slots) - 1)
    out = np.empty(len(ends), np.int64)
    lo = 0
    for i in range(len(ends)):
        hi = ends[i]
        h = _FNV_OFFSET
        for b in range(lo, hi):
            h = (h ^ np.uint64(buf[b])) * _FNV_PRIME
        at = h & mask
        while True:
            row = slots[at]
            if row < 0:
                if insert:
                    slots[at] = i
                out[i] = i if insert else -1
                break
            klo, khi = bounds[row], bounds[row + 1]
            same = khi - klo == hi - lo
            b = 0
            while same and b < hi - lo:
                same = buf[lo + b] == keys[klo + b]
                b += 1
            if same:
                if insert:
                    slots[at] = i
                out[i] = i if insert else row
                break
            at = (at + np.uint64(1)) & mask
        lo = hi
    return out


@functools.cache
def _compiled() -> Callable[..., np.ndarray]:
    """:func:`_find` compiled by numba once per process (see :func:`.jit.njit`)."""
    kernel: Callable[..., np.ndarray] = njit(_find)
    return kernel


def _utf8(codes: Sequence[Any]) -> tuple[bytes, np.ndarray]:
    """The codes' UTF-8 bytes back to back and where each ends (non-text codes as ``str``).

    Joined with NUL separators whose positions give the ends in one numpy pass, unless a code
    is not text or holds a NUL itself; then code by code.
    """
    try:
        text = "\0".join(codes)
    except TypeError:  # a code that is not text (an int from a data frame)
        text = None
    if text is not None and text.count("\0") == len(codes) - 1:
        joined = np.frombuffer(text.encode(), np.uint8)
        seps = np.flatnonzero(joined == 0)
        ends = np.append(seps, len(joined)) - np.arange(len(codes))  # separators dropped
        return joined[joined != 0].tobytes(), ends
    raw = [(c if isinstance(c, str) else str(c)).encode() for c in codes]
    return b"".join(raw), np.cumsum(np.fromiter(map(len, raw), np.int64, len(raw)))


class CodeIndex:
    """Exact item code -> row lookups for a whole batch at once (built once per catalogue)."""

    def __init__(self, codes: Sequence[str]) -> None:
        """Index the catalogue's codes (row ``i`` is ``codes[i]``)."""
        buf, ends = _utf8(codes)
        self._keys = np.frombuffer(buf, np.uint8)
        self._bounds = np.concatenate(([0], ends)).astype(np.int64)
        size = 1 << max(4, (2 * len(codes)).bit_length())  # at most half full
        self._slots = np.full(size, -1, np.int64)
        _compiled()(self._keys, ends, self._keys, self._bounds, self._slots, True)

    def rows(self, codes: Sequence[Any]) -> np.ndarray:
        """The row of each code, -1 where the catalogue has none (int64, one per code).

        A code that is not text is looked up as ``str(code)``.
        """
        if not codes:
            return np.zeros(0, np.int64)
        buf, ends = _utf8(codes)
        found = _compiled()(
            np.frombuffer(buf, np.uint8), ends, self._keys, self._bounds, self._slots, False
        )
        return found
