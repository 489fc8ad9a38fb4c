"""Build a model server and its HTTP app from the environment: the entry point services use.

``serving/<model>/service.py`` calls :func:`open_server` when BentoML imports it; nothing is
loaded until the BentoML service's ``__init__`` calls ``server.load`` (and then
:func:`freeze_loaded_heap`).
"""

from __future__ import annotations

import gc
from typing import Any, Final

from fastapi import FastAPI

from shelfops.registry import DEMAND_MODEL, RECS_MODEL
from shelfops.serving.app import create_app
from shelfops.serving.base import ModelServer
from shelfops.settings import ServingSettings, Settings

MODELS: Final = ("recs", "demand")
REGISTRY_NAMES: Final = {"recs": RECS_MODEL, "demand": DEMAND_MODEL}


def check_model(model: str) -> str:
    """Validate a model name.

    Raises:
        ValueError: Not ``recs`` or ``demand``.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    return model


def model_tag(model: str, serving: ServingSettings | None = None) -> str:
    """The registry tag to serve: ``SHELFOPS_SERVING_MODEL_TAG`` or the newest version."""
    serving = serving or ServingSettings()
    return serving.model_tag or f"{REGISTRY_NAMES[check_model(model)]}:latest"


def new_server(
    model: str, settings: Settings | None = None, serving: ServingSettings | None = None
) -> ModelServer:
    """An unloaded server for ``model``."""
    from shelfops.serving.demand import DemandServer
    from shelfops.serving.recs import RecsServer

    cls = RecsServer if check_model(model) == "recs" else DemandServer
    return cls(settings or Settings(), serving or ServingSettings())


def attach_monitoring(server: ModelServer) -> None:
    """Log sampled predictions (``SHELFOPS_MONITOR_SAMPLE_RATE``) and meter CPU cost per prediction.

    Every real prediction counts toward the cost; only sampled ones are written to the prediction
    log under the home (customer ids only, no other personal data). Synthetic traffic (the
    ``X-ShelfOps-Synthetic`` header) reaches neither, and its CPU time is left out of the cost.
    Closing the server flushes the log.
    """
    from shelfops.monitoring.cost import CostMeter
    from shelfops.monitoring.store import PredictionLogger

    logger = PredictionLogger(server.settings)
    meters: list[CostMeter] = []

    def record(prediction: dict[str, Any]) -> None:
        # The meter starts at the first prediction, after loading and warm-up, so start-up CPU
        # is not billed to the first few predictions.
        if not meters:
            meters.append(CostMeter(server.name, metrics=server.metrics, settings=server.settings))
        meters[0].observe(1)
        logger.log(**prediction)

    def exclude(cpu_seconds: float) -> None:
        if meters:  # before the first real prediction nothing is being billed yet
            meters[0].exclude(cpu_seconds)

    server.hooks.append(record)
    server.synthetic_cpu.append(exclude)
    server.closers.append(logger.close)


def freeze_loaded_heap() -> int:
    """Keep what loading left alive out of the cyclic garbage collector's full collections.

    A full collection walks every tracked object, and a serving process holds about half a
    million after loading (libraries, Feast's registry, the model and its item statistics):
    at the 5,000-product home one took about 250 ms and came every few hundred batches, so
    the request that triggered it waited that long (docs/benchmarks.md, "The online read
    without Feast's timestamp conversion, and the heap frozen"). What exists once the server
    is loaded lives as long as the process, so it is collected now and frozen
    (``gc.freeze``); later full collections walk only what requests allocated. Objects freed
    by reference counting are freed as before; only a frozen object caught in a reference
    cycle stays (the first catalogue snapshot, say, if it held one: once, not per refresh).

    Returns:
        How many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def open_server(model: str) -> tuple[ModelServer, FastAPI]:
    """An unloaded, monitored server configured from the environment, and its HTTP app."""
    server = new_server(model)
    attach_monitoring(server)
    return server, create_app(server)
