"""Compile the training pipeline to YAML and submit it to a Kubeflow Pipelines cluster."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml

EXPERIMENT = "shelfops"


def default_compiled_path() -> Path:
    """The committed compiled pipeline, ``pipelines/compiled/training_pipeline.yaml``."""
    import pipelines

    return Path(pipelines.__file__).parent / "compiled" / "training_pipeline.yaml"


def compile_pipeline(out: Path, image: str | None = None) -> Path:
    """Compile ``training_pipeline`` to a KFP v2 YAML package.

    Args:
        out: The YAML file to write.
        image: Container image for every component (default: the components' ``shelfops:dev``).

    Returns:
        ``out``.
    """
    from kfp import compiler
    from pipelines.components import DEFAULT_IMAGE
    from pipelines.training import training_pipeline

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(out))
    if image and image != DEFAULT_IMAGE:
        # Two documents: the pipeline spec, then the Kubernetes platform spec (volume mounts).
        spec, *platform = yaml.safe_load_all(out.read_text())
        for executor in spec["deploymentSpec"]["executors"].values():
            executor["container"]["image"] = image
        out.write_text(yaml.safe_dump_all([spec, *platform], sort_keys=False))
    return out


def cron6(schedule: str) -> str:
    """KFP's cron has a seconds field first; accept the usual 5-field form too.

    Args:
        schedule: ``"23 3 * * 1"`` or ``"0 23 3 * * 1"``.

    Returns:
        The 6-field expression.

    Raises:
        ValueError: neither 5 nor 6 fields.
    """
    fields = schedule.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ValueError(
        f"schedule {schedule!r} has {len(fields)} fields; use cron with 5 fields "
        "(minute hour day month weekday, e.g. '23 3 * * 1' for Mondays 03:23) or 6 (seconds first)"
    )


def submit(
    host: str,
    arguments: dict[str, Any],
    image: str | None = None,
    schedule: str | None = None,
    experiment: str = EXPERIMENT,
    run_name: str | None = None,
    client: Any = None,
) -> dict[str, str]:
    """Create a pipeline run, or a recurring run when ``schedule`` is given.

    Args:
        host: Kubeflow Pipelines API endpoint (e.g. ``http://localhost:8888``).
        arguments: Pipeline arguments.
        image: Component image (default ``shelfops:dev``).
        schedule: Cron expression for a recurring run (5 or 6 fields); None runs once.
        experiment: KFP experiment name.
        run_name: Display name of the run (default: generated).
        client: A ``kfp.Client`` (default: one for ``host``).

    Returns:
        ``{"kind": "run" | "recurring_run", "id": ..., "name": ...}``.

    Caching is off for the run (and every step is compiled with caching off): steps work on the
    shared home volume, so a weekly retrain with unchanged arguments must run, not hit the cache.
    """
    import time

    import kfp

    name = run_name or f"shelfops-training-{time.strftime('%Y%m%d-%H%M%S')}"
    if client is None:
        with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later": fine
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(host=host)
    kfp_client = client
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(Path(tmp) / "training_pipeline.yaml", image)
        if schedule is None:
            run = kfp_client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=name,
                experiment_name=experiment,
                enable_caching=False,
            )
            return {"kind": "run", "id": str(run.run_id), "name": name}
        cron = cron6(schedule)
        exp = kfp_client.create_experiment(name=experiment)
        job = kfp_client.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name=name,
            cron_expression=cron,
            pipeline_package_path=str(package),
            params=arguments,
            enable_caching=False,
        )
        return {"kind": "recurring_run", "id": str(job.recurring_run_id), "name": name}
