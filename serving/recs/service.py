"""BentoML service for the recs model: hosts the ShelfOps HTTP app, loads the registered model.

No model logic lives here (see ``shelfops.serving``). The model version comes from
``SHELFOPS_SERVING_MODEL_TAG`` (default: the newest registered version); ``bentoml build``
packs that version into the Bento.
"""

from __future__ import annotations

from pathlib import Path

import bentoml

from shelfops.serving.app import untraced_paths
from shelfops.serving.runtime import freeze_loaded_heap, model_tag, open_server

server, app = open_server("recs")


@bentoml.service(
    name="shelfops-recs",
    http={"port": 8080},
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},  # per-request lines cost latency; /metrics counts
    # Our app counts every request itself (shelfops_* at /metrics); BentoML's duplicate traffic
    # metrics cost a middleware pass per request, and without them /metrics is the app's own.
    metrics={"enabled": False},
    tracing={"excluded_urls": untraced_paths("recs")},
)
@bentoml.asgi_app(app, path="/")
class RecsService:
    """The recs model behind KServe V2 and friendly JSON endpoints."""

    model = bentoml.models.BentoModel(model_tag("recs"))

    def __init__(self) -> None:
        """Load the registered model; readiness turns true when this returns."""
        server.load(Path(self.model.path) / "model", str(self.model.tag))
        freeze_loaded_heap()  # full GC pauses walk only what requests allocate

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Flush the prediction log and stop background threads."""
        server.close()
