"""The work behind each Kubeflow pipeline component, as plain functions.

Components in ``pipelines/components.py`` only parse their inputs, call one function here and
write outputs; these functions call the same ``shelfops`` code the CLI uses. Steps share state
through the ShelfOps home (a mounted volume in a cluster) and hand reports, metrics and models to
each other as artifact folders. Every step returns ``compute_s`` (seconds spent in ShelfOps code)
so the local runner can tell orchestration overhead from work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shelfops.settings import Settings

TASKS = ("demand", "recs")
SELECTIONS = ("all", "demand", "recs")
_TRAINING_FILE = "training.json"
_SKIPPED_FILE = "skipped.json"


class StepError(RuntimeError):
    """A step cannot run; the message says what to do."""


def settings_for(home: str) -> Settings:
    """Settings for a step: ``home`` when given, else ``SHELFOPS_HOME`` from the environment.

    Args:
        home: The ShelfOps home (empty: from the environment).

    Returns:
        The settings.
    """
    return Settings(home=Path(home)) if home else Settings()


def _input_file(given: str, default: Path) -> Path | None:
    """The file a step was given (it must exist), else ``default`` if it exists, else None."""
    if given:
        path = Path(given)
        if not path.exists():
            raise StepError(f"{path} does not exist; pass an existing file")
        return path
    return default if default.exists() else None


@contextlib.contextmanager
def _kept(raw_dir: Path, inputs: list[Path | None]) -> Iterator[None]:
    """Keep input files that live under ``raw_dir``: ingest replaces that folder wholesale.

    Without this the generated sample (``<home>/raw/generated``) is gone after the first run,
    and re-running the pipeline has nothing to ingest.
    """
    keep = [p for p in inputs if p is not None and p.resolve().is_relative_to(raw_dir)]
    raw_dir.parent.mkdir(parents=True, exist_ok=True)  # a new home has no folder yet
    with tempfile.TemporaryDirectory(dir=raw_dir.parent, prefix=".pipeline-inputs-") as tmp:
        saved = {p: Path(shutil.copy2(p, Path(tmp) / f"{i}-{p.name}")) for i, p in enumerate(keep)}
        try:
            yield
        finally:
            for original, copy in saved.items():
                if not original.exists():
                    original.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(copy, original)


def ingest_step(
    home: str,
    transactions: str,
    customers: str,
    products: str,
    promotions: str,
    as_of: str,
    clean_out: Path,
) -> dict[str, Any]:
    """Ingest and validate an export; copy the clean tables to ``clean_out`` when it passes.

    A failed quality gate is a result, not an error: the report is written and the clean tables
    of the home are left as they were.

    Args:
        home: The ShelfOps home.
        transactions: Transactions file (empty: the generated sample in the home).
        customers: Customers file (empty: the generated one if present, else derived).
        products: Products file (empty: the generated one if present, else derived).
        promotions: Weekly planned promotions file (empty: none; the demand model's
            known-ahead displays and mailers are then zero).
        as_of: Measure staleness against this date, YYYY-MM-DD (empty: now).
        clean_out: Folder the validated tables are copied into (the Dataset artifact).

    Returns:
        ``passed``, ``reason``, ``report`` (markdown), ``metadata`` and ``compute_s``.
    """
    from shelfops.data.ingest import QualityGateError, ingest, report_markdown

    t0 = time.perf_counter()
    settings = settings_for(home)
    generated = settings.raw_dir / "generated"
    tx_path = _input_file(transactions, generated / "transactions.csv")
    if tx_path is None:
        raise StepError(
            f"no transactions file given and none at {generated}; run `shelfops data generate` "
            "or pass the transactions pipeline parameter"
        )
    cust_path = _input_file(customers, generated / "customers.csv")
    prod_path = _input_file(products, generated / "products.csv")
    prom_path = _input_file(promotions, generated / "promotions.csv")
    with _kept(settings.raw_dir, [tx_path, cust_path, prod_path, prom_path]):
        try:
            result = ingest(
                tx_path,
                settings.root,
                customers_path=cust_path,
                products_path=prod_path,
                promotions_path=prom_path,
                policy=settings.consent_policy,
                as_of=dt.datetime.fromisoformat(as_of) if as_of else None,
            )
            report, passed, reason = result.report, True, ""
            shutil.copytree(settings.clean_dir, clean_out, dirs_exist_ok=True)
        except QualityGateError as exc:
            report, passed, reason = exc.report, False, str(exc)
    tables = report["tables"]
    metadata = {
        "passed": passed,
        "rows_read": tables["transactions"]["rows_read"],
        "rows_accepted": tables["transactions"]["rows_accepted"],
        "rows_quarantined": tables["transactions"]["rows_quarantined"],
        "home": str(settings.root),
    }
    return {
        "passed": passed,
        "reason": reason,
        "report": report_markdown(report),
        "metadata": metadata,
        "compute_s": time.perf_counter() - t0,
    }


def features_step(home: str, manifest_out: Path) -> dict[str, Any]:
    """Build the feature tables, apply the Feast repo and materialize the online store.

    Args:
        home: The ShelfOps home with clean data.
        manifest_out: File the feature manifest (services, tables) is written to.

    Returns:
        ``metadata`` and ``compute_s``.
    """
    from shelfops.data.ingest import load_clean
    from shelfops.features.build import build_feature_tables
    from shelfops.features.definitions import DEMAND_SERVICE, RECS_SERVICE
    from shelfops.features.store import FeatureRepo

    t0 = time.perf_counter()
    settings = settings_for(home)
    tables = build_feature_tables(load_clean(settings.root), settings.features_dir)
    repo = FeatureRepo(settings)
    repo.apply()
    repo.materialize()
    services = {s: repo.feature_names(s) for s in (DEMAND_SERVICE, RECS_SERVICE)}
    manifest = {
        "services": services,
        "tables": [str(p) for p in vars(tables).values()],
        "feast_dir": str(settings.feast_dir),
    }
    manifest_out.parent.mkdir(parents=True, exist_ok=True)
    manifest_out.write_text(json.dumps(manifest, indent=2))
    metadata = {f"{s}_features": len(names) for s, names in services.items()}
    return {"metadata": metadata, "compute_s": time.perf_counter() - t0}


def train_step(home: str, task: str, selection: str, horizon_weeks: int, model_out: Path) -> dict:
    """Train one model (when ``selection`` includes it) into the folder ``model_out``.

    The folder holds ``model/`` (the model's own save format) and ``training.json``
    (validation metrics, registry extras, data window); an unselected task writes
    ``skipped.json`` instead.

    Args:
        home: The ShelfOps home with features applied.
        task: ``demand`` or ``recs``.
        selection: ``all``, ``demand`` or ``recs``.
        horizon_weeks: Demand horizon.
        model_out: The Model artifact folder.

    Returns:
        ``metadata`` and ``compute_s``.
    """
    from shelfops.training.context import data_window, load_context
    from shelfops.training.run import train_task

    if selection not in SELECTIONS:
        raise StepError(f"unknown model selection {selection!r}; use one of {SELECTIONS}")
    t0 = time.perf_counter()
    model_out.mkdir(parents=True, exist_ok=True)
    if selection not in ("all", task):
        (model_out / _SKIPPED_FILE).write_text(json.dumps({"task": task}))
        return {"metadata": {"task": task, "trained": False}, "compute_s": 0.0}
    settings = settings_for(home)
    ctx = load_context(settings, lambda _m: None, build_features=False)
    trained = train_task(ctx, settings, task, horizon_weeks, lambda msg: print(msg, flush=True))
    trained.model.save(model_out / "model")
    record = {
        "task": task,
        "validation": trained.validation,
        "extra": trained.extra,
        "seconds": trained.seconds,
        "data_window": data_window(ctx),
        "seed": settings.seed,
    }
    (model_out / _TRAINING_FILE).write_text(json.dumps(_jsonable(record), indent=2))
    return {
        "metadata": {"task": task, "trained": True, "training_seconds": trained.seconds},
        "compute_s": time.perf_counter() - t0,
    }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=float, allow_nan=True))


def _trained(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / _TRAINING_FILE
    return json.loads(path.read_text()) if path.exists() else None


def evaluate_step(
    models: dict[str, Path],
    margins: dict[str, float],
    gates_out: Path,
    accept_served_gap: bool = False,
) -> dict[str, Any]:
    """Gate every trained model against its best baseline on its validation origins.

    The recommender's gate also holds the served-path condition
    (:func:`shelfops.evaluation.served.gate_checks`) when its train step replayed it.

    Args:
        models: ``{task: model artifact folder}``.
        margins: ``{task: required relative improvement}``.
        gates_out: File the gate results are written to (read by the register step).
        accept_served_gap: Accept a served Recall@10 more than 5% below offline (recorded in
            the gate results and from there in the registry metadata).

    Returns:
        ``passed`` (every trained model passed), ``reason``, ``metrics`` (flat, numeric),
        ``summary`` (the gated figures), ``report`` (markdown) and ``compute_s``.
    """
    from shelfops.evaluation.rolling import mean_metrics
    from shelfops.evaluation.served import gate_checks
    from shelfops.training.gate import GATED_METRIC, gate_task

    t0 = time.perf_counter()
    gates: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    summary: dict[str, Any] = {}
    lines = ["# Model gate", "", "| model | gated metric | model | best baseline | improvement |"]
    lines.append("|---|---|---|---|---|")
    for task, folder in models.items():
        record = _trained(folder)
        if record is None:
            continue
        checks = gate_checks(record["extra"], accepted=accept_served_gap)
        gate = gate_task(task, record["validation"], margins[task], checks=checks)
        gates[task] = {**gate.to_dict(), "message": gate.message()}
        if checks:
            gates[task]["served_gap_accepted"] = accept_served_gap
        metric = GATED_METRIC[task][0]
        for name, values in mean_metrics(record["validation"]).items():
            value = values.get(metric)
            if isinstance(value, int | float) and value == value:
                metrics[f"{task}_{name}_{metric}"] = float(value)
        metrics[f"{task}_gate_passed"] = float(gate.passed)
        summary[f"{task}_{metric}"] = gate.model
        summary[f"{task}_vs_{gate.best_baseline}"] = f"{gate.improvement:+.1%}"
        lines.append(
            f"| {task} | {metric} | {gate.model:.4f} | {gate.best_baseline} "
            f"{gate.baseline:.4f} | {gate.improvement:+.1%} (need {gate.margin:+.1%}) |"
        )
    failed = [f"{task}: {g['message']}" for task, g in gates.items() if not g["passed"]]
    if not gates:
        failed = ["no model was trained"]
    reason = "; ".join(failed)
    lines += ["", f"**{'rejected: ' + reason if failed else 'accepted'}**"]
    gates_out.parent.mkdir(parents=True, exist_ok=True)
    gates_out.write_text(json.dumps(gates, indent=2))
    return {
        "passed": not failed,
        "reason": reason,
        "metrics": metrics,
        "summary": summary,
        "report": "\n".join(lines) + "\n",
        "compute_s": time.perf_counter() - t0,
    }


class _ModelFolder:
    """A trained model folder that ``save_model`` copies into the BentoML store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, path: Path) -> None:
        """Copy the folder to ``path``."""
        shutil.copytree(self.folder, path)


def register_step(home: str, models: dict[str, Path], gates_file: Path) -> dict[str, Any]:
    """Register every trained, accepted model; all of them or none.

    Args:
        home: The ShelfOps home (its BentoML store).
        models: ``{task: model artifact folder}``.
        gates_file: The evaluate step's gate results.

    Returns:
        ``tags`` (``{task: tag}``, empty string for tasks not trained) and ``compute_s``.
    """
    from shelfops.registry import use_bentoml_home

    settings = settings_for(home)
    use_bentoml_home(settings)  # before bentoml is imported
    import bentoml

    from shelfops.training.register import TrainedTask, register_task, registry_metadata

    t0 = time.perf_counter()

    gates = json.loads(gates_file.read_text())
    tags = dict.fromkeys(TASKS, "")
    try:
        for task, folder in models.items():
            record = _trained(folder)
            if record is None:
                continue
            gate = gates.get(task)
            if not gate or not gate["passed"]:
                raise StepError(f"{task} did not pass its gate; refusing to register it")
            extra = dict(record["extra"])
            if "served_gap_accepted" in gate:
                extra["served_gap_accepted"] = gate["served_gap_accepted"]
            trained = TrainedTask(task, None, record["validation"], extra, record["seconds"])
            meta = registry_metadata(trained, gate, record["data_window"], settings)
            tags[task] = register_task(task, _ModelFolder(folder / "model"), meta)
    except Exception:
        for tag in filter(None, tags.values()):  # nothing half-registered
            bentoml.models.delete(tag)
        raise
    return {"tags": tags, "compute_s": time.perf_counter() - t0}


def package_step(home: str, tags: dict[str, str]) -> dict[str, Any]:
    """Build a Bento (offline ``bentoml build``) for every registered model.

    Args:
        home: The ShelfOps home (its BentoML store).
        tags: ``{task: model tag}``; empty tags are skipped.

    Returns:
        ``bentos`` (``{task: bento tag}``) and ``compute_s``.
    """
    from shelfops.registry import use_bentoml_home

    t0 = time.perf_counter()
    settings = settings_for(home)
    use_bentoml_home(settings)
    from shelfops.serving.package import build_bentos

    bentos = dict.fromkeys(TASKS, "")
    bentos.update(build_bentos(settings, {task: tag for task, tag in tags.items() if tag}))
    return {"bentos": bentos, "compute_s": time.perf_counter() - t0}


def deploy_canary_step(home: str, tags: dict[str, str], bentos: dict[str, str]) -> dict[str, Any]:
    """Canary-roll each new model out through the rollout engine (gate, promote or roll back).

    The target follows the profile: ``local`` runs the registered model version as a new
    ``bentoml serve`` revision; ``kserve`` (cluster profile) deploys the Bento image, whose tag
    is the Bento version (CD pushes images under that tag).

    Args:
        home: The ShelfOps home.
        tags: ``{task: model tag}`` from the register step (empty: not trained).
        bentos: ``{task: bento tag}`` from the package step.

    Returns:
        ``outcomes`` (``{task: outcome}``) and ``compute_s``.

    Raises:
        StepError: A canary failed its gate and was rolled back (the stable version serves on).
    """
    from shelfops.rollout.factory import build_engine, default_target

    t0 = time.perf_counter()
    settings = settings_for(home)
    target = default_target(settings)
    engine = build_engine(settings, target)
    outcomes: dict[str, str] = {}
    for task in TASKS:
        tag, bento = tags.get(task, ""), bentos.get(task, "")
        if not tag:
            continue
        version = tag.partition(":")[2] if target == "local" else bento.partition(":")[2]
        result = engine.deploy(task, version)
        outcomes[task] = result.outcome
        if not result.ok:
            raise StepError(f"the {task} canary {version} was rolled back: {result.reason}")
    return {"outcomes": outcomes, "compute_s": time.perf_counter() - t0}


def stop_on_gate(gate: str, reason: str) -> None:
    """Fail the run because a gate rejected its input (the DAG stops here).

    Args:
        gate: ``data`` or ``model``.
        reason: What the gate found.

    Raises:
        StepError: always, with the reason.
    """
    raise StepError(f"{gate} gate failed: {reason}")
