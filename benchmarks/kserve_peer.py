"""The peer for the serving benchmark: stock ``kserve.ModelServer`` hosting the same predictor.

It serves exactly the work ShelfOps' recommendation service does for a V2 inference request
(consent and behaviour from the online store, the shared Predictor, merchandising rules), through
KServe's own model server instead of BentoML. Run by ``benchmarks/bench_serving.py``:

    python benchmarks/kserve_peer.py --home local_outputs --port 8090
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import kserve
import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from shelfops.registry import RECS_MODEL
from shelfops.serving.app import v2_inputs, v2_recs_infer
from shelfops.serving.recs import RecsServer
from shelfops.settings import ServingSettings, Settings


class RecsKServeModel(kserve.Model):  # type: ignore[misc]
    """A KServe custom model: ``load()`` loads the ShelfOps recommendation server."""

    def __init__(self, home: Path) -> None:
        """Create the model named ``recs`` (not loaded)."""
        super().__init__("recs")
        self.home = home
        self.server: RecsServer | None = None

    def load(self) -> bool:
        """Load the newest registered recommender and become ready."""
        settings = Settings(home=self.home)
        base = settings.bentoml_home / "models" / RECS_MODEL
        version = (base / "latest").read_text().strip()
        server = RecsServer(settings, ServingSettings())
        server.load(base / version / "model", f"{RECS_MODEL}:{version}")
        self.server = server
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None, **_: Any
    ) -> InferResponse:
        """V2 inference: the same function ShelfOps' own V2 route calls, in kserve's types."""
        assert self.server is not None
        answer = v2_recs_infer(self.server, v2_inputs(payload), payload.id, synthetic=True)
        return InferResponse(
            response_id=answer.request_id,
            model_name=self.name,
            model_version=self.server.version,
            infer_outputs=[
                InferOutput(
                    t.name,
                    t.shape,
                    t.datatype,
                    data=t.data.reshape(t.shape) if isinstance(t.data, np.ndarray) else t.data,
                )
                for t in answer.outputs
            ],
            parameters={"degraded": answer.degraded},
        )


def main() -> None:
    """Start the stock model server on the given port (REST only)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="ShelfOps home with models.")
    parser.add_argument("--port", type=int, default=8090, help="HTTP port.")
    args = parser.parse_args()
    model = RecsKServeModel(args.home)
    model.load()
    kserve.ModelServer(http_port=args.port, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
