"""HTTP headers the model servers read and write (light: load generators import it too)."""

from __future__ import annotations

from typing import Final

VERSION_HEADER: Final = "X-ShelfOps-Model-Version"
"""Set on every response: the model version that answered."""
DEGRADED_HEADER: Final = "X-ShelfOps-Degraded"
"""``true`` when a fallback answered instead of the model."""
REQUEST_ID_HEADER: Final = "X-Request-Id"
"""The caller's request id (echoed in bodies, and on a 500 so the log can be searched)."""
SYNTHETIC_HEADER: Final = "X-ShelfOps-Synthetic"
"""``true`` on traffic nobody real sent: the canary gate, load tests, benchmarks. Such requests
are served as usual but kept out of the prediction log (so drift, accuracy and adoption) and out
of the serving cost."""
SYNTHETIC: Final[dict[str, str]] = {SYNTHETIC_HEADER: "true"}
"""The header to send with synthetic traffic."""
