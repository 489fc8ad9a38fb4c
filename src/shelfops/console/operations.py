"""The Operations page: rollouts, traffic split, drift and accuracy over time, adoption, cost.

Everything is read through the module that writes it: rollout history and state from
:class:`shelfops.rollout.state.StateStore`, drift from
:func:`shelfops.monitoring.report.drift_over_time` against
:func:`shelfops.monitoring.drift.load_reference`, accuracy from
:mod:`shelfops.monitoring.performance`, cost from :func:`shelfops.monitoring.cost.read_cost`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shelfops.console.charts import Series, line_chart
from shelfops.console.home import HomeData
from shelfops.settings import MonitorSettings

MODELS = ("recs", "demand")


@dataclass
class ModelOps:
    """One model's operational picture."""

    model: str
    state: dict[str, Any] | None
    logged: int
    log_window: str
    charts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Operations:
    """Everything the Operations page shows."""

    history: list[dict[str, Any]]
    models: list[ModelOps]
    cost_chart: str
    cost_rows: list[dict[str, Any]]
    budget_per_1k: float


def _gate_figures(entry: dict[str, Any]) -> str:
    gate = entry.get("gate") or {}
    canary = gate.get("canary") or {}
    if not canary:
        return ""
    parts = [
        f"p95 {canary.get('p95_ms', float('nan')):.0f} ms",
        f"p99 {canary.get('p99_ms', float('nan')):.0f} ms",
        f"errors {100 * float(canary.get('error_rate', 0.0)):.2f}%",
        f"{canary.get('rps', float('nan')):.1f} req/s",
    ]
    return ("passed: " if gate.get("passed") else "FAILED: ") + ", ".join(parts)


def rollout_history(home: HomeData, limit: int = 40) -> list[dict[str, Any]]:
    """The newest rollout transitions with their gate figures, newest first."""
    from shelfops.rollout.state import StateStore

    store = StateStore(home.settings.root / "rollout")
    rows = []
    for e in reversed(store.history(limit=limit)):
        rows.append(
            {
                "at": e.get("at", ""),
                "model": e.get("model", ""),
                "target": e.get("target", ""),
                "event": e.get("event", ""),
                "stable": e.get("stable_version") or "",
                "canary": e.get("canary_version") or "",
                "canary_percent": e.get("canary_percent", 0),
                "actor": e.get("actor", ""),
                "gate": _gate_figures(e),
                "reason": e.get("reason", ""),
            }
        )
    return rows


def _state(home: HomeData, model: str) -> dict[str, Any] | None:
    from shelfops.rollout.state import StateStore

    store = StateStore(home.settings.root / "rollout")
    for target in ("local", "kserve"):
        state = store.load(target, model)
        if state is not None:
            return state.to_dict()
    return None


def _labels(ts: pd.Series, freq: str) -> list[str]:
    fmt = {"D": "%m-%d", "h": "%m-%d %Hh", "min": "%H:%M"}[freq]
    return [pd.Timestamp(t).strftime(fmt) for t in ts]


def model_ops(home: HomeData, model: str, monitor: MonitorSettings) -> ModelOps:
    """Drift, accuracy and adoption over time for one model."""
    from shelfops.monitoring.drift import load_reference
    from shelfops.monitoring.performance import forecast_accuracy, forecast_pairs, recs_outcomes
    from shelfops.monitoring.report import _bucket, drift_over_time

    log = home.predictions(model)
    ops = ModelOps(model, _state(home, model), len(log), "")
    if log.empty:
        ops.notes.append(
            f"No {model} predictions logged yet: the services log through the prediction "
            "logger; `shelfops monitor simulate` logs traffic on a local home."
        )
        return ops
    ops.log_window = f"{log['ts'].min():%Y-%m-%d %H:%M} to {log['ts'].max():%Y-%m-%d %H:%M} UTC"
    freq = _bucket(log["ts"])

    def drift() -> pd.DataFrame | str:
        try:
            reference = load_reference(home.settings, model)
        except FileNotFoundError as exc:
            return str(exc)
        return drift_over_time(log, reference, freq, ignore=monitor.ignore_features)

    from shelfops.monitoring.drift import reference_path
    from shelfops.monitoring.store import predictions_dir

    drifted = home.cached(
        f"drift:{model}",
        [predictions_dir(home.settings) / model, reference_path(home.settings, model)],
        drift,
    )
    if isinstance(drifted, str):
        ops.notes.append(drifted)
    elif drifted.empty:
        ops.notes.append(
            "Drift: no time bucket has enough distinct logged rows per feature yet "
            "(at least 30) to compare with the training reference."
        )
    else:
        top = drifted.groupby("feature")["psi"].max().nlargest(6).index
        wide = drifted[drifted["feature"].isin(top)].pivot_table(
            index="bucket", columns="feature", values="psi"
        )
        ops.charts.append(
            line_chart(
                f"{model}: drift (PSI against the training reference, per {freq} bucket)",
                _labels(wide.index.to_series(), freq),
                [Series(str(c), wide[c].tolist()) for c in wide.columns],
                hline=monitor.psi_max,
                hline_label=f"PSI limit {monitor.psi_max}",
                y_label="PSI",
            )
        )
    if model == "demand":
        acc = home.cached(
            "accuracy",
            home.log_deps(model),
            lambda: forecast_accuracy(forecast_pairs(log, home.feedback("actual"))),
        )
        if acc.by_week.empty:
            ops.notes.append("Forecast accuracy: no actuals have arrived for logged forecasts yet.")
        else:
            ops.charts.append(
                line_chart(
                    "demand: forecast accuracy on arrived actuals (1 − WAPE per week)",
                    [str(pd.Timestamp(w).date()) for w in acc.by_week["week_start"]],
                    [Series("1 − WAPE", acc.by_week["accuracy"].tolist())],
                    y_label="accuracy",
                )
            )
    else:
        outcome = home.cached(
            "outcomes",
            home.log_deps(model),
            lambda: recs_outcomes(log, home.feedback("recommendation")),
        )
        if outcome.by_day.empty or outcome.requests == 0:
            ops.notes.append("Adoption: no recommendation requests logged yet.")
        else:
            ops.notes.append(
                f"Adoption {_pct(outcome.adoption)} and hit rate {_pct(outcome.hit_rate)} over "
                f"{outcome.requests:,} logged requests ({outcome.requests_with_purchase:,} "
                "followed by a purchase), from feedback."
            )
            by_day = outcome.by_day
            ops.charts.append(
                line_chart(
                    "recs: adoption and hit rate per day (from feedback)",
                    [str(pd.Timestamp(d).date()) for d in by_day["day"]],
                    [
                        Series("adoption", by_day["adoption"].astype(float).tolist()),
                        Series("hit rate", pd.to_numeric(by_day["hit_rate"]).tolist()),
                    ],
                )
            )
    return ops


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def operations(home: HomeData, monitor: MonitorSettings) -> Operations:
    """Build the Operations page's content."""
    from shelfops.monitoring.cost import cost_dir, read_cost

    cost = home.cached("cost", [cost_dir(home.settings)], lambda: read_cost(home.settings))
    budget = monitor.cost_budget_per_1k_usd
    if cost.empty:
        chart = line_chart("Cost per 1,000 predictions (USD)", [], [])
        rows: list[dict[str, Any]] = []
    else:
        wide = cost.pivot_table(index="at", columns="model", values="cost_per_1k_usd")
        chart = line_chart(
            "Cost per 1,000 predictions (USD) against budget",
            [pd.Timestamp(t).strftime("%m-%d %H:%M") for t in wide.index],
            [Series(str(c), wide[c].tolist()) for c in wide.columns],
            hline=budget,
            hline_label=f"budget ${budget:g} per 1k",
            y_label="USD",
        )
        last = cost.groupby("model").tail(1)
        rows = [
            {
                "model": r.model,
                "predictions": f"{int(r.predictions):,}",
                "cost_per_1k": f"${r.cost_per_1k_usd:.6f}",
                "budget_per_1k": f"${r.budget_per_1k_usd:.6f}",
                "over_budget": bool(r.over_budget),
                "at": f"{pd.Timestamp(r.at):%Y-%m-%d %H:%M}",
            }
            for r in last.itertuples()
        ]
    return Operations(
        history=rollout_history(home),
        models=[model_ops(home, m, monitor) for m in MODELS],
        cost_chart=chart,
        cost_rows=rows,
        budget_per_1k=budget,
    )
