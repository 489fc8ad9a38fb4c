"""Rollout backends: where revisions run and how traffic is split between them."""

from __future__ import annotations

from shelfops.rollout.backends.base import Backend, BackendError, Observation, Revision

__all__ = ["Backend", "BackendError", "Observation", "Revision"]
