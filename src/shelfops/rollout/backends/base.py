"""The interface every rollout backend implements (local processes, KServe)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class BackendError(RuntimeError):
    """A backend could not do what was asked; the message says what to do."""


@dataclass(frozen=True)
class Revision:
    """One running revision of a model.

    Attributes:
        version: Model version (local: BentoML model version; kserve: image tag).
        url: The revision's own URL (KServe's ``latest-``/``prev-`` tagged URL locally too).
        ready: Whether its readiness endpoint answers.
        percent: Share of the model endpoint's traffic it receives.
    """

    version: str
    url: str | None
    ready: bool
    percent: int


@dataclass(frozen=True)
class Observation:
    """What a backend sees for one model right now.

    Attributes:
        model: Model name.
        endpoint: The one stable URL applications call, if deployed.
        stable_version: Version taking the non-canary share of traffic.
        canary_version: Version under canary, if any.
        canary_percent: Canary share of traffic.
        revisions: Every revision the backend runs for this model.
    """

    model: str
    endpoint: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    canary_percent: int = 0
    revisions: tuple[Revision, ...] = field(default_factory=tuple)

    def url_of(self, version: str | None) -> str | None:
        """The own URL of a revision, or None."""
        for rev in self.revisions:
            if rev.version == version:
                return rev.url
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


class Backend(Protocol):
    """Runs model revisions and splits one endpoint's traffic between them.

    Every method is idempotent: calling it again with the same arguments after a crash
    converges to the same outcome.
    """

    name: str

    def resolve_version(self, model: str, version: str) -> str:
        """Turn what the user typed (``latest``, a full tag) into the version recorded."""
        ...

    def observe(self, model: str) -> Observation:
        """What runs for ``model`` now."""
        ...

    def start_canary(self, model: str, version: str, stable: str | None) -> None:
        """Start ``version`` beside ``stable`` with 0% of the traffic (or as the first one)."""
        ...

    def wait_ready(self, model: str, version: str, timeout_s: float) -> bool:
        """Wait until ``version`` is ready; False on timeout."""
        ...

    def set_traffic(self, model: str, stable: str | None, canary: str, percent: int) -> None:
        """Send ``percent`` of the traffic to ``canary`` and the rest to ``stable``."""
        ...

    def promote(self, model: str, version: str, previous: str | None) -> None:
        """Give ``version`` all the traffic; retire or keep ``previous`` as the warm fallback."""
        ...

    def rollback(self, model: str, to_version: str, drop: str | None) -> None:
        """Give ``to_version`` all the traffic (starting it if needed) and retire ``drop``."""
        ...
