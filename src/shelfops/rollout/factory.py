"""Builds the engine, backend and gate for a target from the settings (used by the CLI)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from shelfops.rollout.backends.base import Backend
from shelfops.rollout.engine import RolloutEngine
from shelfops.rollout.gate import Check, LocustGate, business_check
from shelfops.rollout.state import StateStore, default_actor, default_trigger
from shelfops.rollout.traffic import SAMPLE_ENV, write_sample
from shelfops.settings import RolloutSettings, Settings

Target = Literal["local", "kserve"]


def default_target(settings: Settings) -> Target:
    """``local`` on the local profile, ``kserve`` on the cluster profile."""
    return "kserve" if settings.profile == "cluster" else "local"


def report_dir(settings: Settings, config: RolloutSettings, target: str) -> Path:
    """Where gate reports go.

    The configured folder, else ``.shelfops/loadtests`` for kserve (the CD workflow uploads it),
    else ``<home>/loadtests``.
    """
    if config.report_dir is not None:
        return config.report_dir.expanduser().resolve()
    if target == "kserve":
        return (Path.cwd() / ".shelfops" / "loadtests").resolve()
    return settings.root / "loadtests"


def build_backend(
    settings: Settings,
    config: RolloutSettings,
    target: str,
    revision_env: Mapping[str, str] | None = None,
) -> Backend:
    """The backend of ``target`` (``local`` or ``kserve``).

    Raises:
        ValueError: For an unknown target.
    """
    if target == "local":
        from shelfops.rollout.backends.local import LocalBackend

        return LocalBackend(settings, config, revision_env=revision_env)
    if target == "kserve":
        from shelfops.rollout.backends.kserve import KServeBackend

        return KServeBackend(settings, config)
    raise ValueError(f"unknown target {target!r}; choose local or kserve")


def traffic_env(settings: Settings, out_dir: Path) -> dict[str, str]:
    """Environment for Locust with a fresh traffic sample, or none when nothing is ingested."""
    try:
        return {SAMPLE_ENV: str(write_sample(settings, out_dir / "sample.json"))}
    except FileNotFoundError:
        return {}


def registry_business(
    settings: Settings, tolerance: float
) -> Callable[[str, str, str | None], Check | None]:
    """Business check from the BentoML registry metadata of canary and stable."""

    def check(model: str, canary: str, stable: str | None) -> Check | None:
        from shelfops.registry import model_metadata, use_bentoml_home

        use_bentoml_home(settings)
        name = f"shelfops_{model}"

        def meta(version: str | None) -> dict[str, object] | None:
            if not version:
                return None
            try:
                return model_metadata(f"{name}:{version}")
            except Exception:
                return None

        return business_check(meta(canary), meta(stable), tolerance)

    return check


def build_engine(
    settings: Settings,
    target: str,
    config: RolloutSettings | None = None,
    revision_env: Mapping[str, str] | None = None,
    on_event: Callable[[str], None] | None = None,
    backend: Backend | None = None,
) -> RolloutEngine:
    """The rollout engine for ``target`` with the Locust gate and the shared history."""
    config = config or RolloutSettings()
    out = report_dir(settings, config, target)
    out.mkdir(parents=True, exist_ok=True)
    gate = LocustGate(
        config,
        out,
        env=lambda: traffic_env(settings, out),
        business=registry_business(settings, config.business_tolerance),
    )
    return RolloutEngine(
        backend or build_backend(settings, config, target, revision_env),
        StateStore(settings.root / "rollout"),
        gate,
        config,
        actor=default_actor(settings.actor),
        trigger=default_trigger(),
        on_event=on_event,
    )
