"""The Insights page: hidden gems, category-to-category affinities, and demand movers.

Each block says how it is measured and over which data window:

* hidden gems come from the registered recommender's item statistics (the same
  :func:`shelfops.reports.html.hidden_gems` the training report shows: at most median
  popularity over the 52 weeks before the model's cutoff, highest repeat rate), plus how often
  the live service recommended each (exposure, from the prediction log) and how often that led
  to a purchase (conversion, from feedback) when monitoring has recorded any;
* affinities are :func:`shelfops.reports.html.category_pairs` over the last 52 weeks of clean
  transactions;
* demand movers compare each product's mean weekly units in the last 4 complete weeks with the
  13 weeks before them (the weekly panel the demand features are built from).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shelfops.console.charts import heatmap
from shelfops.console.home import HomeData

GEMS = 12
HEATMAP_CATEGORIES = 14
MOVERS = 10


@dataclass(frozen=True)
class Insights:
    """Everything the Insights page shows."""

    gems: pd.DataFrame
    gems_window: str
    exposure_window: str
    affinity_svg: str
    affinity_top: pd.DataFrame
    affinity_window: str
    movers_up: pd.DataFrame
    movers_down: pd.DataFrame
    movers_window: str


def _exposure(home: HomeData) -> tuple[pd.DataFrame, str]:
    """Times each item was recommended (prediction log) and bought after it (feedback)."""
    log = home.predictions("recs")
    cols = ["stock_code", "times_recommended", "bought_after", "conversion"]
    if log.empty:
        return pd.DataFrame(columns=cols), "no recommendations logged yet"
    shown: dict[str, int] = {}
    by_request: dict[str, set[str]] = {}
    for rid, raw in zip(log["request_id"].astype(str), log["outputs"], strict=True):
        codes = {str(i["stock_code"]) for i in json.loads(raw).get("items", [])}
        by_request[rid] = codes
        for c in codes:
            shown[c] = shown.get(c, 0) + 1
    bought: dict[str, int] = {}
    fb = home.feedback("recommendation")
    if not fb.empty:
        sold = fb[fb["action"] == "bought"]
        for rid, code in zip(
            sold["request_id"].astype(str), sold["stock_code"].astype(str), strict=True
        ):
            if code in by_request.get(rid, ()):
                bought[code] = bought.get(code, 0) + 1
    frame = pd.DataFrame({"stock_code": list(shown), "times_recommended": list(shown.values())})
    frame["bought_after"] = frame["stock_code"].map(bought).fillna(0).astype(int)
    frame["conversion"] = frame["bought_after"] / frame["times_recommended"]
    window = (
        f"{len(by_request):,} logged recommendation requests, "
        f"{log['ts'].min():%Y-%m-%d %H:%M} to {log['ts'].max():%Y-%m-%d %H:%M} UTC"
    )
    return frame, window


def hidden_gems_live(home: HomeData) -> tuple[pd.DataFrame, str, str]:
    """Hidden gems with their live exposure and conversion, and both windows."""
    from shelfops.reports.html import hidden_gems

    predictor = home.recs_predictor()
    if predictor is None:
        return pd.DataFrame(), "no recommender registered yet (run `shelfops quickstart`)", ""
    stats = predictor.model.stats
    gems = hidden_gems(stats, n=GEMS)
    exposure, exposure_window = home.cached(
        "exposure", home.log_deps("recs"), lambda: _exposure(home)
    )
    if not gems.empty:
        gems = gems.merge(exposure, on="stock_code", how="left")
        for col in ("times_recommended", "bought_after", "invoices_52w"):
            gems[col] = pd.to_numeric(gems[col]).fillna(0).astype(int)
        gems["conversion"] = pd.to_numeric(gems["conversion"])
    window = f"52 weeks before the model's cutoff {stats.cutoff or '(unknown)'} ({predictor.tag})"
    return gems, window, exposure_window


def _last_52_weeks(tx: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    end = pd.Timestamp(tx["invoice_date"].max())
    start = end - pd.Timedelta(weeks=52)
    recent = tx[tx["invoice_date"] > start]
    return recent, f"{start:%Y-%m-%d} to {end:%Y-%m-%d} ({recent['invoice'].nunique():,} baskets)"


def affinities(home: HomeData) -> tuple[str, pd.DataFrame, str]:
    """The heatmap (lift, with P(B | A) in each cell's tooltip), the top pairs, the window."""
    from shelfops.reports.html import category_pairs

    def compute() -> tuple[pd.DataFrame, str]:
        clean = home.clean()
        recent, window = _last_52_weeks(clean["transactions"])
        return category_pairs(recent, clean["products"], max_categories=HEATMAP_CATEGORIES), window

    pairs, window = home.cached("affinity", home.clean_deps, compute)
    if pairs.empty:
        return heatmap("Category affinity (lift)", [], [], []), pairs, window
    cats = sorted(set(pairs["category_a"]) | set(pairs["category_b"]))
    lift = pairs.pivot_table(index="category_a", columns="category_b", values="lift")
    lift = lift.reindex(index=cats, columns=cats)
    values = [[None if pd.isna(v) else float(v) for v in row] for row in lift.to_numpy().tolist()]
    svg = heatmap("Category affinity: row → column (lift)", cats, cats, values)
    top = (
        pairs[pairs["baskets"] >= 5]
        .sort_values("lift", ascending=False)
        .head(12)
        .reset_index(drop=True)
    )
    return svg, top, window


def demand_movers(home: HomeData) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Products whose weekly units moved most: last 4 complete weeks against the 13 before."""

    def compute() -> tuple[pd.DataFrame, pd.DataFrame, str]:
        panel = home.weekly()
        if panel.empty:
            return pd.DataFrame(), pd.DataFrame(), "no sales yet"
        last = pd.Timestamp(panel["week_start"].max())
        tx_end = pd.Timestamp(home.clean()["transactions"]["invoice_date"].max())
        if tx_end < last + pd.Timedelta(days=6):
            last -= pd.Timedelta(weeks=1)  # the newest week is not complete yet
        recent_start = last - pd.Timedelta(weeks=3)
        before_start = recent_start - pd.Timedelta(weeks=13)
        wk = panel["week_start"]
        recent = panel[(wk >= recent_start) & (wk <= last)].groupby("stock_code")["units"].sum() / 4
        before = (
            panel[(wk >= before_start) & (wk < recent_start)].groupby("stock_code")["units"].sum()
            / 13
        )
        frame = pd.DataFrame({"before_per_week": before, "recent_per_week": recent}).fillna(0.0)
        frame = frame[(frame["before_per_week"] + frame["recent_per_week"]) > 0]
        frame["change_per_week"] = frame["recent_per_week"] - frame["before_per_week"]
        frame["change_pct"] = np.where(
            frame["before_per_week"] > 0,
            100
            * frame["change_per_week"]
            / frame["before_per_week"].where(frame["before_per_week"] > 0),
            np.nan,
        )
        products = home.clean()["products"]
        names = (
            products.assign(stock_code=products["stock_code"].astype(str))
            .drop_duplicates("stock_code")
            .set_index("stock_code")
        )
        frame.index = frame.index.astype(str)
        frame.insert(
            0, "description", names["description"].reindex(frame.index).fillna("").to_numpy()
        )
        frame.insert(
            1,
            "category",
            names["category"].reindex(frame.index).fillna("").to_numpy()
            if "category" in names
            else "",
        )
        frame = frame.reset_index(names="stock_code")
        up = frame.sort_values("change_per_week", ascending=False).head(MOVERS)
        down = frame.sort_values("change_per_week").head(MOVERS)
        window = (
            f"weeks {recent_start:%Y-%m-%d} to {last:%Y-%m-%d} against "
            f"{before_start:%Y-%m-%d} to {recent_start - pd.Timedelta(days=1):%Y-%m-%d}"
        )
        return up, down, window

    return home.cached("movers", home.clean_deps, compute)


def insights(home: HomeData) -> Insights:
    """Build the Insights page's content."""
    gems, gems_window, exposure_window = hidden_gems_live(home)
    svg, top, window = affinities(home)
    up, down, movers_window = demand_movers(home)
    return Insights(gems, gems_window, exposure_window, svg, top, window, up, down, movers_window)


def frame_rows(frame: pd.DataFrame, digits: int = 3) -> tuple[list[str], list[list[Any]]]:
    """Column names and formatted rows of a frame, for the templates (escaped there)."""
    if frame is None or frame.empty:
        return [], []
    rows = []
    for rec in frame.itertuples(index=False):
        row = []
        for v in rec:
            if isinstance(v, float | np.floating):
                row.append("" if np.isnan(v) else f"{v:,.{digits}f}")
            else:
                row.append(v)
        rows.append(row)
    return list(frame.columns), rows
