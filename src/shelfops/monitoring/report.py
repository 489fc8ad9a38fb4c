"""``shelfops monitor report``: an HTML page with plots of what monitoring measured.

Sections: drift per feature over time (PSI against the training reference per time bucket),
forecast accuracy on arrived actuals per week, latency and throughput (from the prediction log,
and from a ``/metrics`` URL when given), cost per 1,000 predictions, recommendation adoption and
hit rate, and what triggered the last retraining. Plots use the same matplotlib setup as the
training report (:mod:`shelfops.reports.html`).
"""

from __future__ import annotations

import html
import json
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.monitoring.check import checks_dir, distinct_rows, read_triggers
from shelfops.monitoring.cost import read_cost
from shelfops.monitoring.drift import load_reference, psi, psi_categorical
from shelfops.monitoring.performance import forecast_accuracy, forecast_pairs, recs_outcomes
from shelfops.monitoring.store import FEATURE_PREFIX, OUTPUT_PREFIX, FeedbackStore, read_predictions
from shelfops.reports.html import _fmt, _frame_html, _plt
from shelfops.settings import MonitorSettings, Settings


def _bucket(ts: pd.Series) -> str:
    span = ts.max() - ts.min() if len(ts) else pd.Timedelta(0)
    if span > pd.Timedelta(days=3):
        return "D"
    if span > pd.Timedelta(hours=3):
        return "h"
    return "min"


def drift_over_time(
    log: pd.DataFrame,
    reference: pd.DataFrame,
    freq: str,
    min_samples: int = 30,
    ignore: tuple[str, ...] = (),
) -> pd.DataFrame:
    """PSI of each logged feature against the reference per time bucket.

    Args:
        log: Prediction log of one model.
        reference: Its training reference.
        freq: Pandas frequency of the buckets (``D``, ``h``, ``min``).
        min_samples: Buckets with fewer distinct values of a feature are left out.
        ignore: Input names left out (as ``MonitorSettings.ignore_features``).

    Returns:
        ``bucket, feature, psi, n`` rows.
    """
    skip = {FEATURE_PREFIX + f for f in ignore}
    cols = [
        c
        for c in log.columns
        if (c.startswith(FEATURE_PREFIX) or c.startswith(OUTPUT_PREFIX))
        and c in reference
        and c not in skip
    ]
    reference = distinct_rows(reference, cols)
    rows = []
    for bucket, whole in log.groupby(log["ts"].dt.floor(freq)):
        group = distinct_rows(whole, cols)
        for c in cols:
            cur, ref = group[c].dropna(), reference[c].dropna()
            if len(cur) < min_samples or ref.empty:
                continue
            numeric = pd.api.types.is_numeric_dtype(cur) and pd.api.types.is_numeric_dtype(ref)
            value = (
                psi(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
                if numeric
                else psi_categorical(ref, cur)
            )
            rows.append({"bucket": bucket, "feature": c, "psi": value, "n": len(cur)})
    return pd.DataFrame(rows, columns=["bucket", "feature", "psi", "n"])


def _line_plot(
    frame: pd.DataFrame,
    x: str,
    series: dict[str, str],
    title: str,
    path: Path,
    hline: float | None = None,
    ylabel: str = "",
) -> str | None:
    """Lines over time; with a single time bucket, one bar per series instead."""
    if frame.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    present = {c: lab for c, lab in series.items() if c in frame and frame[c].notna().any()}
    if len(frame) == 1:
        labels = list(present.values())
        ax.bar(labels, [float(frame[c].iloc[0]) for c in present], color="#2b7a78")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        title = f"{title} ({frame[x].iloc[0]})"
    else:
        for col, label in present.items():
            ax.plot(frame[x], frame[col].astype(float), marker=".", label=label)
    if hline is not None:
        ax.axhline(hline, color="#c0392b", linestyle="--", linewidth=1, label="threshold")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="best")
    if len(frame) > 1:
        fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def scrape_metrics(url: str, timeout: float = 5.0) -> pd.DataFrame:
    """Read a Prometheus ``/metrics`` page into ``name, labels, value`` rows.

    Args:
        url: The ``/metrics`` URL of a ShelfOps service.
        timeout: Seconds to wait.

    Returns:
        One row per sample.
    """
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode("utf-8")
    rows = [
        {"name": s.name, "labels": json.dumps(s.labels, sort_keys=True), "value": s.value}
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.startswith("shelfops_")
    ]
    return pd.DataFrame(rows, columns=["name", "labels", "value"])


def _metrics_summary(samples: pd.DataFrame) -> pd.DataFrame:
    """Requests by outcome and p95 latency estimated from the histogram buckets."""
    rows: list[dict[str, Any]] = []
    req = samples[samples["name"] == "shelfops_requests_total"]
    for labels, value in zip(req["labels"], req["value"], strict=True):
        rows.append({"what": f"requests {labels}", "value": value})
    buckets = samples[samples["name"] == "shelfops_request_duration_seconds_bucket"]
    if not buckets.empty:
        parsed = [json.loads(x) for x in buckets["labels"]]
        b = pd.DataFrame(parsed).assign(value=buckets["value"].to_numpy())
        b["le"] = b["le"].astype(float)
        keys = [k for k in b.columns if k not in ("le", "value")]
        for key, g in b.groupby(keys) if keys else [((), b)]:
            g = g.sort_values("le")
            total = float(g["value"].iloc[-1])
            if total <= 0:
                continue
            p95 = float(g.loc[g["value"] >= 0.95 * total, "le"].iloc[0])
            rows.append({"what": f"p95 latency bucket (s) {key}", "value": p95})
    return pd.DataFrame(rows, columns=["what", "value"])


def write_monitor_report(
    settings: Settings,
    monitor: MonitorSettings,
    out_dir: Path | None = None,
    *,
    metrics_url: str | None = None,
) -> Path:
    """Write ``index.html`` with the monitoring plots.

    Args:
        settings: The settings (the home holds the logs).
        monitor: Thresholds drawn on the plots.
        out_dir: Report folder (default ``<home>/reports/monitoring``).
        metrics_url: A service's ``/metrics`` URL to scrape for latency and throughput.

    Returns:
        The path of ``index.html``.
    """
    out = out_dir or settings.reports_dir / "monitoring"
    out.mkdir(parents=True, exist_ok=True)
    parts: list[str] = ["<h1>ShelfOps monitoring</h1>"]
    log_all = read_predictions(settings)
    if log_all.empty:
        parts.append(
            "<p><b>No predictions logged yet.</b> The services log through "
            "<code>shelfops.monitoring.store.PredictionLogger</code>; run "
            "<code>shelfops monitor simulate</code> to log traffic on the local home.</p>"
        )
    feedback = FeedbackStore(settings)
    last_check = _last_check(settings)
    for model, log in log_all.groupby("model") if not log_all.empty else []:
        model = str(model)
        freq = _bucket(log["ts"])
        parts.append(f"<h2>Model {html.escape(model)}</h2>")
        parts.append(
            f"<p>{len(log):,} logged predictions from {_fmt(str(log['ts'].min()))} to "
            f"{_fmt(str(log['ts'].max()))}; versions "
            f"{html.escape(', '.join(sorted(log['model_version'].astype(str).unique())))}.</p>"
        )
        # Drift per feature over time.
        try:
            reference = load_reference(settings, model)
        except FileNotFoundError as exc:
            parts.append(f"<p><i>{html.escape(str(exc))}</i></p>")
            reference = None
        if reference is not None:
            drift = drift_over_time(log, reference, freq, ignore=monitor.ignore_features)
            if not drift.empty:
                top = drift.groupby("feature")["psi"].max().nlargest(8).index
                wide = drift[drift["feature"].isin(top)].pivot_table(
                    index="bucket", columns="feature", values="psi"
                )
                name = _line_plot(
                    wide.reset_index(),
                    "bucket",
                    {c: c for c in wide.columns},
                    "PSI against the training reference (top features)",
                    out / f"{model}_drift.png",
                    hline=monitor.psi_max,
                    ylabel="PSI",
                )
                parts += ["<h3>Drift per feature over time</h3>", f'<img src="{name}">']
        # Latency and throughput from the log.
        g = log.groupby(log["ts"].dt.floor(freq))
        lat = pd.DataFrame(
            {
                "p50": g["latency_ms"].quantile(0.5),
                "p95": g["latency_ms"].quantile(0.95),
                "logged": g.size(),
            }
        ).reset_index()
        rate = max(monitor.sample_rate, 1e-9)
        seconds = pd.Timedelta(1, unit=freq).total_seconds()
        lat["throughput_rps"] = lat["logged"] / rate / seconds
        name = _line_plot(
            lat,
            "ts",
            {"p50": "p50 ms", "p95": "p95 ms"},
            "Latency (logged predictions)",
            out / f"{model}_latency.png",
            hline=500.0,
            ylabel="ms",
        )
        name2 = _line_plot(
            lat,
            "ts",
            {"throughput_rps": "requests/s (logged / sample rate)"},
            f"Throughput per {freq} bucket",
            out / f"{model}_throughput.png",
        )
        parts += ["<h3>Latency and throughput</h3>", f'<img src="{name}">', f'<img src="{name2}">']
        # Performance on arrived truth.
        if "demand" in model:
            acc = forecast_accuracy(forecast_pairs(log, feedback.read("actual")))
            validated = (last_check.get(model, {}).get("metrics") or {}).get("validated_accuracy")
            parts.append("<h3>Forecast accuracy on arrived actuals</h3>")
            if acc.by_week.empty:
                parts.append("<p><i>no actuals have arrived for logged forecasts yet</i></p>")
            else:
                name = _line_plot(
                    acc.by_week,
                    "week_start",
                    {"accuracy": "1 - WAPE"},
                    "Forecast accuracy per week",
                    out / f"{model}_accuracy.png",
                    hline=None
                    if validated is None
                    else monitor.accuracy_ratio_min * float(validated),
                )
                parts += [f'<img src="{name}">', _frame_html(acc.by_week)]
        if "recs" in model:
            outcome = recs_outcomes(log, feedback.read("recommendation"))
            parts.append("<h3>Adoption and hit rate</h3>")
            parts.append(
                f"<p>adoption {_fmt(outcome.adoption)}, hit rate {_fmt(outcome.hit_rate)} over "
                f"{outcome.requests:,} requests ({outcome.requests_with_purchase:,} followed by "
                "a purchase).</p>"
            )
            name = _line_plot(
                outcome.by_day,
                "day",
                {"adoption": "adoption", "hit_rate": "hit rate"},
                "Recommendations followed",
                out / f"{model}_adoption.png",
            )
            if name:
                parts.append(f'<img src="{name}">')
    # Cost.
    cost = read_cost(settings)
    parts.append("<h2>Cost per 1,000 predictions</h2>")
    if cost.empty:
        parts.append("<p><i>no cost snapshots yet (services persist them via CostMeter)</i></p>")
    else:
        wide = cost.pivot_table(index="at", columns="model", values="cost_per_1k_usd")
        name = _line_plot(
            wide.reset_index(),
            "at",
            {c: str(c) for c in wide.columns},
            "Cost per 1,000 predictions (USD)",
            out / "cost.png",
            hline=monitor.cost_budget_per_1k_usd * monitor.cost_over_budget_ratio,
            ylabel="USD",
        )
        last = cost.groupby("model").tail(1)
        table = pd.DataFrame(
            {
                "model": last["model"],
                "predictions": last["predictions"].map("{:,}".format),
                "CPU seconds": last["cpu_seconds"].map("{:.2f}".format),
                "USD per 1k": last["cost_per_1k_usd"].map(lambda v: f"{v:.6f}"),
                "budget per 1k": last["budget_per_1k_usd"].map(lambda v: f"{v:.6f}"),
                "over budget (>15%)": last["over_budget"],
            }
        )
        parts += [f'<img src="{name}">', _frame_html(table)]
    if metrics_url:
        parts.append(f"<h2>Live metrics from {html.escape(metrics_url)}</h2>")
        try:
            parts.append(_frame_html(_metrics_summary(scrape_metrics(metrics_url))))
        except (OSError, ValueError) as exc:
            parts.append(f"<p><i>could not scrape: {html.escape(str(exc))}</i></p>")
    # Last check and last trigger.
    triggers = read_triggers(settings)
    parts.append("<h2>Last retraining trigger</h2>")
    if triggers:
        t = triggers[-1]
        items = "".join(f"<li>{html.escape(r)}</li>" for r in t["reasons"])
        parts.append(
            f"<p>{html.escape(t['at'])}: models {html.escape(', '.join(t['models']))} "
            f"({html.escape(t.get('action', ''))})</p><ul>{items}</ul>"
        )
    else:
        parts.append("<p>No retraining has been triggered.</p>")
    style = (
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}"
        "table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd}"
        "</style>"
    )
    page = (
        "<html><head><meta charset='utf-8'><title>ShelfOps monitoring</title>"
        f"{style}</head><body>{''.join(parts)}</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _last_check(settings: Settings) -> dict[str, dict[str, Any]]:
    files = sorted(checks_dir(settings).glob("check-*.json"))
    if not files:
        return {}
    data = json.loads(files[-1].read_text(encoding="utf-8"))
    return {m["model"]: m for m in data.get("models", [])}
