"""The Share page: a one-page weekly summary for merchandising and management.

It says what the models are worth against their baselines (the validation figures stored with
each registered model), how customers took up recommendations over the last 7 days (feedback),
and which rules and rollouts changed in those days. The HTML is self-contained (inline styles
and SVG); the PDF is the same page printed by headless Chromium when it is installed.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from shelfops.console.charts import bar_chart
from shelfops.console.home import HomeData
from shelfops.console.operations import rollout_history
from shelfops.registry import DEMAND_MODEL, RECS_MODEL
from shelfops.serving.rules_store import RulesStore

DAYS = 7
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
"""Flags that let Debian's Chromium run headless as root without trying to reach the network."""

STYLE = (
    "body{font-family:sans-serif;max-width:860px;margin:auto;color:#222}"
    "table{border-collapse:collapse;margin:6px 0}"
    "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}"
    "svg{max-width:100%;height:auto}h1{margin-bottom:0}.muted{color:#666}"
)

VALUE_METRICS = {
    DEMAND_MODEL: ("demand forecast", "wrmsse", "WRMSSE, lower is better"),
    RECS_MODEL: ("recommendations", "recall@10", "Recall@10, higher is better"),
}


def chromium() -> str | None:
    """Path of a Chromium that can print PDFs, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _value_section(home: HomeData) -> list[str]:
    parts = ["<h2>Model value against baselines</h2>"]
    for name, (label, metric, explain) in VALUE_METRICS.items():
        meta = home.model_metadata(name)
        if not meta:
            parts.append(f"<p>No {label} model registered.</p>")
            continue
        model = (meta.get("metrics") or {}).get(metric)
        base = {k: v.get(metric) for k, v in (meta.get("baseline_metrics") or {}).items()}
        labels = ["model", *base]
        values = [model, *base.values()]
        window = meta.get("data_window") or {}
        parts.append(
            f"<h3>{html.escape(label)} ({html.escape(str(meta['tag']))})</h3>"
            f"<p class='muted'>{html.escape(explain)}, measured on the validation window at the "
            f"end of the training data ({html.escape(str(window.get('start', '?')))} to "
            f"{html.escape(str(window.get('end', '?')))}), model and baselines alike.</p>"
        )
        parts.append(
            bar_chart(
                f"{label}: {metric}",
                labels,
                [float("nan") if v is None else float(v) for v in values],
            )
        )
    return parts


def _adoption_section(home: HomeData, since: pd.Timestamp) -> list[str]:
    from shelfops.monitoring.performance import recs_outcomes

    log = home.predictions("recs")
    parts = [f"<h2>Adoption, last {DAYS} days</h2>"]
    if log.empty:
        return [*parts, "<p>No recommendation requests logged.</p>"]
    recent = log[log["ts"] >= since]
    outcome = home.cached(
        f"outcomes-since:{since:%Y-%m-%d}",
        home.log_deps("recs"),
        lambda: recs_outcomes(recent, home.feedback("recommendation")),
    )

    def pct(v: float | None) -> str:
        return "n/a (no feedback yet)" if v is None else f"{100 * v:.1f}%"

    return [
        *parts,
        f"<p>{outcome.requests:,} recommendation requests; adoption (any action on a "
        f"recommended item) {pct(outcome.adoption)}; hit rate (a recommended item bought, among "
        f"requests followed by a purchase) {pct(outcome.hit_rate)}.</p>",
    ]


def _changes_section(home: HomeData, since: pd.Timestamp) -> list[str]:
    parts = [f"<h2>Rule changes, last {DAYS} days</h2>"]
    audit = [a for a in RulesStore(home.settings).audit() if pd.Timestamp(a["at"]) >= since]
    if not audit:
        parts.append("<p>No rule changes.</p>")
    else:
        rows = "".join(
            f"<tr><td>{html.escape(a['at'])}</td><td>{html.escape(a['actor'])}</td>"
            f"<td>{html.escape(a['action'])} v{a['version']:04d}</td>"
            f"<td>{html.escape(', '.join(f'{k}: {o} → {n}' for k, (o, n) in a['changes'].items()))}"
            f"</td><td>{html.escape(a.get('note') or '')}</td></tr>"
            for a in audit
        )
        parts.append(
            "<table><tr><th>when</th><th>who</th><th>what</th><th>changes</th><th>why</th></tr>"
            f"{rows}</table>"
        )
    rollouts = [
        r
        for r in rollout_history(home, limit=200)
        if r["at"] and pd.Timestamp(r["at"]) >= since and r["event"] in {"promoted", "rolled_back"}
    ]
    parts.append(f"<h2>Rollouts, last {DAYS} days</h2>")
    if not rollouts:
        parts.append("<p>No promotions or rollbacks.</p>")
    else:
        parts.append(
            "<ul>"
            + "".join(
                f"<li>{html.escape(r['at'])}: {html.escape(r['model'])} {html.escape(r['event'])}"
                f" (stable {html.escape(r['stable'])})</li>"
                for r in rollouts
            )
            + "</ul>"
        )
    return parts


def summary_body(home: HomeData, now: dt.datetime | None = None) -> str:
    """The weekly summary's content (HTML without the page around it)."""
    at = pd.Timestamp(now or dt.datetime.now(dt.UTC))
    if at.tzinfo is None:
        at = at.tz_localize("UTC")
    since = at - pd.Timedelta(days=DAYS)
    parts: list[Any] = [
        "<h1>ShelfOps weekly summary</h1>",
        f"<p class='muted'>{since:%Y-%m-%d} to {at:%Y-%m-%d} · home "
        f"{html.escape(str(home.settings.root))}</p>",
        *_value_section(home),
        *_adoption_section(home, since),
        *_changes_section(home, since),
    ]
    return "".join(parts)


def weekly_summary(home: HomeData, now: dt.datetime | None = None) -> str:
    """The weekly summary as one self-contained HTML page."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ShelfOps weekly summary</title>"
        f"<style>{STYLE}</style></head><body>{summary_body(home, now)}</body></html>"
    )


class PdfUnavailable(RuntimeError):
    """No converter is installed; the message says how to get one."""


def summary_pdf(page: str, timeout_s: float = 60.0) -> bytes:
    """Print the summary HTML to PDF with headless Chromium.

    Raises:
        PdfUnavailable: Chromium is not installed or failed.
    """
    binary = chromium()
    if binary is None:
        raise PdfUnavailable(
            "no PDF converter: install Chromium (`apt-get install chromium`) or download the HTML"
        )
    with tempfile.TemporaryDirectory(prefix="shelfops-share-") as tmp:
        src, out = Path(tmp) / "summary.html", Path(tmp) / "summary.pdf"
        src.write_text(page, encoding="utf-8")
        done = subprocess.run(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={out}",
                src.as_uri(),
            ],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        if not out.is_file():
            raise PdfUnavailable(
                f"Chromium could not print the summary (exit {done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-300:]}"
            )
        return out.read_bytes()
