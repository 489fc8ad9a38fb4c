"""``shelfops monitor check``: drift, performance, confidence and cost against thresholds.

One check reads the prediction log of the recent window (``window_days`` before ``now``), the
training reference, the feedback log, the registry's validated levels and the cost snapshots,
and returns a :class:`CheckResult`. Any breach makes it a retraining trigger: the result is
written to ``<home>/monitoring/checks/`` and appended to ``<home>/monitoring/triggers.jsonl``,
and the CLI exits non-zero (and can start retraining, see :mod:`shelfops.monitoring.trigger`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.monitoring.cost import read_cost
from shelfops.monitoring.drift import FeatureDrift, compare, compare_segments, load_reference
from shelfops.monitoring.performance import (
    forecast_accuracy,
    forecast_pairs,
    recs_outcomes,
)
from shelfops.monitoring.store import (
    FEATURE_PREFIX,
    OUTPUT_PREFIX,
    FeedbackStore,
    monitoring_dir,
    read_predictions,
)
from shelfops.observability.metrics import ServingMetrics
from shelfops.settings import MonitorSettings, Settings

ACCURACY_WEEKS = 4
"""Rolling window of arrived-actual weeks the forecast accuracy is measured on."""

REGISTRY_NAMES = {"demand": "shelfops_demand", "recs": "shelfops_recs"}
ENTITY_KEYS = ("stock_code", "customer_id")


@dataclass(frozen=True)
class Validated:
    """Levels a model reached on its validation window (from the registry metadata)."""

    accuracy: float | None = None  # demand: 1 - WAPE
    hit_rate: float | None = None  # recs: HR@10


@dataclass
class ModelCheck:
    """Everything measured for one model."""

    model: str
    window_start: str
    window_end: str
    predictions: int
    drift: list[FeatureDrift] = field(default_factory=list)
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        out = asdict(self)
        out["drift"] = [d.to_dict() for d in self.drift]
        return out


@dataclass
class CheckResult:
    """The outcome of one check over every model."""

    at: str
    models: list[ModelCheck]

    @property
    def breaches(self) -> list[str]:
        """Every breach, prefixed with its model."""
        return [f"{m.model}: {b}" for m in self.models for b in m.breaches]

    @property
    def breached(self) -> bool:
        """Whether any threshold was breached (a retraining trigger)."""
        return bool(self.breaches)

    def retrain_models(self) -> list[str]:
        """Models with a breach."""
        return [m.model for m in self.models if m.breaches]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return {
            "at": self.at,
            "breached": self.breached,
            "breaches": self.breaches,
            "models": [m.to_dict() for m in self.models],
        }


def validated_levels(settings: Settings, model: str, version: str | None = None) -> Validated:
    """Validated accuracy (demand) or hit rate (recs) from the model's registry metadata.

    Args:
        settings: The settings (BentoML home).
        model: ``demand`` or ``recs``.
        version: Registry version (default: latest).

    Returns:
        The levels; empty when the model or the metric is not in the registry.
    """
    name = REGISTRY_NAMES.get(model)
    if name is None:
        return Validated()
    from shelfops.registry import model_metadata, use_bentoml_home

    use_bentoml_home(settings)
    import bentoml

    meta: Mapping[str, Any] | None = None
    for tag in ([f"{name}:{version}"] if version else []) + [f"{name}:latest"]:
        try:
            meta = model_metadata(tag)
            break
        except bentoml.exceptions.NotFound:
            continue
    if not meta:
        return Validated()
    metrics = meta.get("metrics") or {}
    if model == "demand" and metrics.get("wape") is not None:
        return Validated(accuracy=1.0 - float(metrics["wape"]))
    if model == "recs" and metrics.get("hr@10") is not None:
        return Validated(hit_rate=float(metrics["hr@10"]))
    return Validated()


def distinct_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per entity and distinct value set: repeated requests are one observation.

    The same product or customer is asked for many times with the same stored features;
    counting each request would make the KS test treat copies as independent evidence and
    raise false alarms. Frames without an entity key are returned unchanged.

    Args:
        frame: Logged or reference rows.
        columns: The compared columns.

    Returns:
        The distinct rows.
    """
    keys = [
        c
        for k in ENTITY_KEYS
        for c in (k, FEATURE_PREFIX + k)
        if c in frame and frame[c].notna().any()
    ]
    if not keys:
        return frame
    return frame.drop_duplicates(subset=[keys[0], *[c for c in columns if c in frame]])


def _utc(ts: dt.datetime | pd.Timestamp | None) -> pd.Timestamp:
    t = pd.Timestamp.now(tz="UTC") if ts is None else pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def check_model(
    settings: Settings,
    monitor: MonitorSettings,
    model: str,
    *,
    now: dt.datetime | pd.Timestamp | None = None,
    validated: Validated | None = None,
    reference: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    segments: Mapping[str, str] | None = None,
) -> ModelCheck:
    """Check one model over the recent window.

    Args:
        settings: The settings.
        monitor: Thresholds.
        model: Model name as logged.
        now: End of the window (default: now).
        validated: Validated levels (default: read from the registry).
        reference: Training reference (default: :func:`load_reference`).
        predictions: The whole prediction log of this model (default: read it).
        segments: Entity key (``stock_code`` or ``customer_id``) -> segment, e.g. product
            category, to judge drift per segment as well as pooled.

    Returns:
        The measurements and breaches.
    """
    end = _utc(now)
    start = end - pd.Timedelta(days=monitor.window_days)
    log = read_predictions(settings, model) if predictions is None else predictions
    recent = log[(log["ts"] >= start) & (log["ts"] < end)] if not log.empty else log
    result = ModelCheck(model, start.isoformat(), end.isoformat(), len(recent))
    if recent.empty:
        result.notes.append("no predictions logged in the window")
    # Drift of inputs and outputs against the training reference.
    if reference is None:
        try:
            reference = load_reference(settings, model)
        except FileNotFoundError as exc:
            result.notes.append(str(exc))
    if reference is not None and not recent.empty:
        ignore = {FEATURE_PREFIX + f for f in monitor.ignore_features}
        inputs = [
            c
            for c in recent.columns
            if c.startswith(FEATURE_PREFIX) and c in reference and c not in ignore
        ]
        outputs = [c for c in recent.columns if c.startswith(OUTPUT_PREFIX) and c in reference]
        kw = {"psi_max": monitor.psi_max, "alpha": monitor.ks_alpha}
        reference = distinct_rows(reference, inputs + outputs)
        current = distinct_rows(recent, inputs + outputs)
        result.metrics["distinct_rows"] = len(current)
        result.drift = compare(
            reference, current, inputs, min_samples=monitor.min_samples, kind="input", **kw
        ) + compare(
            reference, current, outputs, min_samples=monitor.min_samples, kind="output", **kw
        )
        if segments:
            key = next((k for k in ENTITY_KEYS if k in reference), None)
            if key is not None:
                cur_key = FEATURE_PREFIX + key if FEATURE_PREFIX + key in current else key
                result.drift += compare_segments(
                    reference,
                    current,
                    inputs,
                    segments,
                    ref_key=key,
                    cur_key=cur_key,
                    min_samples=monitor.segment_min_samples,
                    psi_max=monitor.psi_max,
                    alpha=monitor.ks_alpha,
                )
        drifted = [
            d.feature if d.segment is None else f"{d.feature} in {d.segment}"
            for d in result.drift
            if d.drifted
        ]
        result.metrics["features_drifted"] = len(drifted)
        pooled = [d.psi for d in result.drift if d.segment is None and d.judged]
        per_segment = [d.psi for d in result.drift if d.segment is not None and d.judged]
        result.metrics["max_psi"] = max(pooled, default=0.0)
        if per_segment:
            result.metrics["max_segment_psi"] = max(per_segment)
        if len(drifted) >= monitor.drifted_features_min:
            result.breaches.append(
                f"significant drift in {len(drifted)} input/output feature(s) "
                f"(PSI > {monitor.psi_max} and KS p < {monitor.ks_alpha} corrected): "
                + ", ".join(d.removeprefix(FEATURE_PREFIX) for d in drifted[:8])
            )
    if not recent.empty:
        result.metrics["degraded_share"] = float(recent["degraded"].mean())
        result.metrics["latency_p95_ms"] = float(recent["latency_ms"].quantile(0.95))
        conf_col = OUTPUT_PREFIX + "confidence"
        if conf_col in recent and recent[conf_col].notna().any():
            conf = float(recent[conf_col].mean())
            result.metrics["confidence_mean"] = conf
            if conf < monitor.confidence_min:
                result.breaches.append(
                    f"mean prediction confidence {conf:.3f} below {monitor.confidence_min}"
                )
    _check_performance(settings, monitor, model, log, end, validated, result)
    _check_cost(settings, monitor, model, result)
    return result


def _check_performance(
    settings: Settings,
    monitor: MonitorSettings,
    model: str,
    log: pd.DataFrame,
    end: pd.Timestamp,
    validated: Validated | None,
    result: ModelCheck,
) -> None:
    kind = "demand" if "demand" in model else "recs" if "recs" in model else None
    if kind is None or log.empty:
        return
    if validated is None:
        version = str(log["model_version"].iloc[-1]) if "model_version" in log else None
        try:
            validated = validated_levels(settings, kind, version)
        except Exception as exc:  # a missing or unreadable registry must not stop the check
            result.notes.append(f"validated levels unavailable: {exc}")
            validated = Validated()
    store = FeedbackStore(settings)
    ratio = monitor.accuracy_ratio_min
    if kind == "demand":
        actuals = store.read("actual")
        if not actuals.empty:
            actuals = actuals[pd.to_datetime(actuals["week_start"], utc=True) < end]
        acc = forecast_accuracy(forecast_pairs(log, actuals), weeks=ACCURACY_WEEKS)
        result.metrics |= {"actual_pairs": acc.pairs, "wape": acc.wape, "accuracy": acc.accuracy}
        result.metrics["validated_accuracy"] = validated.accuracy
        _judge(
            result,
            "forecast accuracy on arrived actuals",
            acc.accuracy,
            validated.accuracy,
            (acc.pairs, monitor.accuracy_min_actuals, "forecast-actual pairs"),
            ratio,
        )
    else:
        start = end - pd.Timedelta(days=monitor.window_days)
        window = log[(log["ts"] >= start) & (log["ts"] < end)]
        out = recs_outcomes(window, store.read("recommendation"))
        result.metrics |= {
            "requests": out.requests,
            "requests_with_purchase": out.requests_with_purchase,
            "hit_rate": out.hit_rate,
            "adoption": out.adoption,
            "validated_hit_rate": validated.hit_rate,
        }
        _judge(
            result,
            "recommendation hit rate",
            out.hit_rate,
            validated.hit_rate,
            (out.requests_with_purchase, monitor.accuracy_min_actuals, "requests with a purchase"),
            ratio,
        )


def _judge(
    result: ModelCheck,
    what: str,
    value: float | None,
    validated: float | None,
    evidence: tuple[int, int, str],
    ratio: float,
) -> None:
    """Breach when ``value`` is below ``ratio`` of its validated level, given enough evidence.

    ``evidence`` is ``(have, need, what they are)``, e.g. ``(12, 50, "forecast-actual pairs")``.
    """
    have, need, unit = evidence
    if value is None or have < need:
        result.notes.append(f"{what} not judged: {have} {unit} (need {need})")
    elif validated is None:
        result.notes.append(f"{what} not judged: no validated level in the registry")
    elif value < ratio * validated:
        result.breaches.append(
            f"{what} {value:.3f} is below {ratio:.0%} of its validated level {validated:.3f}"
        )


def _check_cost(
    settings: Settings, monitor: MonitorSettings, model: str, result: ModelCheck
) -> None:
    cost = read_cost(settings, model)
    cost = cost[cost["cost_per_1k_usd"].notna()] if not cost.empty else cost
    if cost.empty:
        return
    last = cost.iloc[-1]
    per_1k = float(last["cost_per_1k_usd"])
    budget = monitor.cost_budget_per_1k_usd
    result.metrics |= {"cost_per_1k_usd": per_1k, "cost_budget_per_1k_usd": budget}
    if per_1k > budget * monitor.cost_over_budget_ratio:
        result.breaches.append(
            f"cost per 1k predictions ${per_1k:.5f} is over the budget ${budget:.5f} by more "
            f"than {monitor.cost_over_budget_ratio - 1:.0%}"
        )


def logged_models(settings: Settings) -> list[str]:
    """Models with a prediction log under the home."""
    folder = monitoring_dir(settings) / "predictions"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def run_check(
    settings: Settings,
    monitor: MonitorSettings,
    models: list[str] | None = None,
    *,
    now: dt.datetime | pd.Timestamp | None = None,
    validated: Mapping[str, Validated] | None = None,
    segments: Mapping[str, Mapping[str, str]] | None = None,
    save: bool = True,
) -> CheckResult:
    """Check every logged model (or ``models``) and record the outcome.

    Args:
        settings: The settings.
        monitor: Thresholds.
        models: Models to check (default: every model with a log).
        now: End of the window (default: now).
        validated: Validated levels per model (default: from the registry).
        segments: Per model, entity key -> segment (see :func:`check_model`).
        save: Write the result under ``<home>/monitoring/checks`` and, on a breach, append a
            trigger record.

    Returns:
        The result.
    """
    names = models or logged_models(settings)
    checks = [
        check_model(
            settings,
            monitor,
            m,
            now=now,
            validated=(validated or {}).get(m) if validated is not None else None,
            segments=(segments or {}).get(m),
        )
        for m in names
    ]
    result = CheckResult(at=_utc(now).isoformat(), models=checks)
    if save:
        save_check(settings, result)
    return result


def export_metrics(result: CheckResult, metrics: ServingMetrics) -> None:
    """Set the catalogue's gauges from a check, for Prometheus and the alert rules.

    ``shelfops_model_accuracy{model, metric}`` gets ``accuracy`` (1 - WAPE), ``hit_rate`` and
    ``adoption``; ``shelfops_feature_drift_psi{model, feature}`` gets each pooled input's PSI.

    Args:
        result: A check result.
        metrics: The service's metric objects (from ``build_metrics``).
    """
    for m in result.models:
        for name in ("accuracy", "hit_rate", "adoption"):
            value = m.metrics.get(name)
            if value is not None:
                metrics.model_accuracy.labels(model=m.model, metric=name).set(float(value))
        for d in m.drift:
            if d.segment is None and d.kind == "input":
                feature = d.feature.removeprefix(FEATURE_PREFIX)
                metrics.feature_drift_psi.labels(model=m.model, feature=feature).set(d.psi)


def checks_dir(settings: Settings) -> Path:
    """Folder of saved check results."""
    return monitoring_dir(settings) / "checks"


def triggers_path(settings: Settings) -> Path:
    """JSON-lines file of retraining triggers."""
    return monitoring_dir(settings) / "triggers.jsonl"


def save_check(settings: Settings, result: CheckResult) -> Path:
    """Write a check result and, if it breached, append a trigger record."""
    folder = checks_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _utc(pd.Timestamp(result.at)).strftime("%Y%m%dT%H%M%S")
    path = folder / f"check-{stamp}.json"
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    if result.breached:
        record_trigger(settings, result.retrain_models(), result.breaches, source=str(path))
    return path


def record_trigger(
    settings: Settings,
    models: list[str],
    reasons: list[str],
    *,
    source: str,
    action: str = "recorded",
) -> dict[str, Any]:
    """Append a retraining trigger to ``triggers.jsonl`` and return it."""
    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "models": models,
        "reasons": reasons,
        "source": source,
        "action": action,
    }
    path = triggers_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return record


def read_triggers(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded trigger, oldest first."""
    path = triggers_path(settings)
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
