"""Load stored models into in-process servers (shared by the serving tests)."""

from __future__ import annotations

from pathlib import Path

from shelfops.registry import DEMAND_MODEL, RECS_MODEL
from shelfops.serving.base import ModelServer
from shelfops.serving.runtime import new_server
from shelfops.settings import ServingSettings, Settings


def stored_model(settings: Settings, name: str) -> tuple[Path, str]:
    """The newest stored model folder of ``name`` and its tag, read from the store's files."""
    base = settings.bentoml_home / "models" / name
    version = (base / "latest").read_text().strip()
    return base / version / "model", f"{name}:{version}"


def load_server(
    model: str, settings: Settings, serving: ServingSettings | None = None
) -> ModelServer:
    """A server for ``model`` loaded from the newest stored version."""
    server = new_server(model, settings, serving or ServingSettings())
    name = RECS_MODEL if model == "recs" else DEMAND_MODEL
    server.load(*stored_model(settings, name))
    return server
