"""Kubeflow Pipelines v2 components: thin typed wrappers over ``shelfops.orchestration.steps``.

Each component imports ShelfOps inside its body (a lightweight component: KFP ships the function
source and runs it in the ShelfOps image, which has ShelfOps and KFP installed), calls one step
function, and writes artifacts with metadata. ``home`` is the ShelfOps home the steps share (a
mounted volume in a cluster; empty means ``SHELFOPS_HOME`` in the component's environment).
No ``from __future__ import annotations`` here: KFP reads the real annotations.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

# The image every component runs in: the project's own Dockerfile
# (`docker build -t shelfops:dev .`); `shelfops pipeline compile/submit --image` swap it.
DEFAULT_IMAGE = "shelfops:dev"


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def ingest_data(
    home: str,
    transactions: str,
    customers: str,
    products: str,
    promotions: str,
    as_of: str,
    clean: Output[Dataset],
    quality_report: Output[Markdown],
) -> NamedTuple("IngestOutputs", [("passed", bool), ("reason", str), ("compute_s", float)]):  # type: ignore[valid-type]
    """Ingest and validate the export; ``passed`` is the data-quality gate."""
    from collections import namedtuple
    from pathlib import Path

    from shelfops.orchestration import steps

    out = steps.ingest_step(
        home, transactions, customers, products, promotions, as_of, Path(clean.path)
    )
    Path(quality_report.path).write_text(out["report"])
    clean.metadata.update(out["metadata"])
    quality_report.metadata.update(out["metadata"])
    result = namedtuple("result", ["passed", "reason", "compute_s"])
    return result(out["passed"], out["reason"], out["compute_s"])


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def stop_on_data_gate(reason: str) -> None:
    """Stop the run: the data-quality gate rejected the export."""
    from shelfops.orchestration import steps

    steps.stop_on_gate("data", reason)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def build_features(home: str, clean: Input[Dataset], features: Output[Dataset]) -> float:
    """Build feature tables, apply the Feast repo, materialize; returns compute seconds."""
    from pathlib import Path

    from shelfops.orchestration import steps

    out = steps.features_step(home, Path(features.path))
    features.metadata.update(
        {**out["metadata"], "rows_accepted": clean.metadata.get("rows_accepted")}
    )
    return out["compute_s"]


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def train_demand(
    home: str, selection: str, horizon_weeks: int, features: Input[Dataset], model: Output[Model]
) -> float:
    """Train the demand model (unless ``selection`` excludes it); returns compute seconds."""
    from pathlib import Path

    from shelfops.orchestration import steps

    out = steps.train_step(home, "demand", selection, horizon_weeks, Path(model.path))
    model.metadata.update(out["metadata"])
    return out["compute_s"]


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def train_recs(
    home: str, selection: str, horizon_weeks: int, features: Input[Dataset], model: Output[Model]
) -> float:
    """Train the recommender (unless ``selection`` excludes it); returns compute seconds."""
    from pathlib import Path

    from shelfops.orchestration import steps

    out = steps.train_step(home, "recs", selection, horizon_weeks, Path(model.path))
    model.metadata.update(out["metadata"])
    return out["compute_s"]


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def evaluate_models(
    demand: Input[Model],
    recs: Input[Model],
    demand_margin: float,
    recs_margin: float,
    accept_served_gap: bool,
    metrics: Output[Metrics],
    gate_report: Output[Markdown],
    gates: Output[Artifact],
) -> NamedTuple("EvaluateOutputs", [("passed", bool), ("reason", str), ("compute_s", float)]):  # type: ignore[valid-type]
    """Gate each trained model against its best baseline; ``passed`` is the model gate."""
    from collections import namedtuple
    from pathlib import Path

    from shelfops.orchestration import steps

    out = steps.evaluate_step(
        {"demand": Path(demand.path), "recs": Path(recs.path)},
        {"demand": demand_margin, "recs": recs_margin},
        Path(gates.path),
        accept_served_gap=accept_served_gap,
    )
    for name, value in out["metrics"].items():
        metrics.log_metric(name, value)
    Path(gate_report.path).write_text(out["report"])
    gates.metadata.update({"passed": out["passed"], **out["summary"]})
    result = namedtuple("result", ["passed", "reason", "compute_s"])
    return result(out["passed"], out["reason"], out["compute_s"])


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def stop_on_model_gate(reason: str) -> None:
    """Stop the run: a model did not beat its best baseline by the required margin."""
    from shelfops.orchestration import steps

    steps.stop_on_gate("model", reason)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def register_models(
    home: str, demand: Input[Model], recs: Input[Model], gates: Input[Artifact]
) -> NamedTuple("RegisterOutputs", [("demand_tag", str), ("recs_tag", str), ("compute_s", float)]):  # type: ignore[valid-type]
    """Register the accepted models in the BentoML store (all or none)."""
    from collections import namedtuple
    from pathlib import Path

    from shelfops.orchestration import steps

    out = steps.register_step(
        home, {"demand": Path(demand.path), "recs": Path(recs.path)}, Path(gates.path)
    )
    result = namedtuple("result", ["demand_tag", "recs_tag", "compute_s"])
    return result(out["tags"]["demand"], out["tags"]["recs"], out["compute_s"])


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def package_bentos(home: str, demand_tag: str, recs_tag: str) -> NamedTuple(  # type: ignore[valid-type]
    "PackageOutputs", [("demand_bento", str), ("recs_bento", str), ("compute_s", float)]
):
    """Build a Bento per registered model (offline ``bentoml build``)."""
    from collections import namedtuple

    from shelfops.orchestration import steps

    out = steps.package_step(home, {"demand": demand_tag, "recs": recs_tag})
    result = namedtuple("result", ["demand_bento", "recs_bento", "compute_s"])
    return result(out["bentos"]["demand"], out["bentos"]["recs"], out["compute_s"])


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def deploy_canary(
    home: str, demand_tag: str, recs_tag: str, demand_bento: str, recs_bento: str
) -> float:
    """Canary-roll the new models out through the rollout engine (gate, promote or roll back)."""
    from shelfops.orchestration import steps

    out = steps.deploy_canary_step(
        home,
        {"demand": demand_tag, "recs": recs_tag},
        {"demand": demand_bento, "recs": recs_bento},
    )
    return out["compute_s"]
