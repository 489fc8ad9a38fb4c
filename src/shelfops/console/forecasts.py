"""The Forecasts page: P10/P50/P90 against actuals, per product and per category.

Forecasts are what the demand service answered (the prediction log, newest forecast per
product and week); actuals are the weekly units of the clean transactions (the same panel the
demand features are built from) and, for weeks after the data, the actual sales posted back as
feedback. A category's band is the sum of its products' P10 and P90: a conservative band, not
a quantile of the sum (which would be narrower).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shelfops.console.charts import Band, Series, line_chart
from shelfops.console.home import HomeData

HISTORY_WEEKS = 26
CHOICES = 40


@dataclass(frozen=True)
class ForecastView:
    """What the Forecasts page shows."""

    products: list[tuple[str, str]]  # (stock_code, label) choices
    categories: list[str]
    product: str | None
    category: str | None
    product_chart: str
    category_chart: str
    window: str
    note: str


def logged_forecasts(home: HomeData) -> pd.DataFrame:
    """The newest logged forecast per product and week (``stock_code, week_start, p10..p90``)."""
    from shelfops.monitoring.store import predictions_dir

    def compute() -> pd.DataFrame:
        from shelfops.monitoring.performance import logged_forecasts as from_log

        frame = from_log(home.predictions("demand"))
        if frame.empty:
            return frame
        frame["week_start"] = frame["week_start"].dt.tz_localize(None)
        return (
            frame.sort_values("ts")
            .drop_duplicates(["stock_code", "week_start"], keep="last")
            .reset_index(drop=True)
        )

    return home.cached("forecasts", [predictions_dir(home.settings) / "demand"], compute)


def _actuals(home: HomeData) -> pd.DataFrame:
    """Weekly actual units: the clean data, then actuals posted as feedback."""
    from shelfops.monitoring.store import feedback_dir

    def compute() -> pd.DataFrame:
        panel = home.weekly()[["stock_code", "week_start", "units"]].copy()
        panel["stock_code"] = panel["stock_code"].astype(str)
        panel["week_start"] = pd.to_datetime(panel["week_start"])
        fed = home.feedback("actual")
        if not fed.empty:
            fed = fed[["stock_code", "week_start", "units"]].copy()
            fed["stock_code"] = fed["stock_code"].astype(str)
            fed["week_start"] = pd.to_datetime(fed["week_start"]).dt.tz_localize(None)
            panel = pd.concat([panel, fed]).drop_duplicates(
                ["stock_code", "week_start"], keep="last"
            )
        return panel

    return home.cached("actuals", [*home.clean_deps, feedback_dir(home.settings)], compute)


def _chart(title: str, actual: pd.DataFrame, fc: pd.DataFrame, start: pd.Timestamp) -> str:
    weeks = sorted(
        set(actual.loc[actual["week_start"] >= start, "week_start"]) | set(fc["week_start"])
    )
    a = actual.set_index("week_start")["units"]
    f = fc.set_index("week_start")
    return line_chart(
        title,
        [pd.Timestamp(w).strftime("%Y-%m-%d") for w in weeks],
        [
            Series("P50", [f["p50"].get(w) for w in weeks]),
            Series("actual units", [a.get(w) for w in weeks], dots=True),
        ],
        band=Band("P10–P90", [f["p10"].get(w) for w in weeks], [f["p90"].get(w) for w in weeks]),
        y_label="units per week",
    )


def forecast_view(home: HomeData, product: str | None, category: str | None) -> ForecastView:
    """Build the Forecasts page for the chosen product and category (defaults: the largest)."""
    from shelfops.monitoring.store import feedback_dir

    fc = logged_forecasts(home)
    if fc.empty:
        empty = line_chart("P10/P50/P90 against actuals", [], [])
        return ForecastView(
            [],
            [],
            None,
            None,
            empty,
            empty,
            "",
            "No demand forecasts logged yet: the demand service logs what it answers; "
            "`shelfops quickstart` (its canary gate) or `shelfops monitor simulate` sends traffic.",
        )
    products = home.clean()["products"]
    names = (
        products.assign(stock_code=products["stock_code"].astype(str))
        .drop_duplicates("stock_code")
        .set_index("stock_code")
    )
    cat_of = names["category"].astype(str) if "category" in names else pd.Series(dtype=str)
    volume = fc.groupby("stock_code")["p50"].sum().sort_values(ascending=False)
    choices = [
        (c, f"{c} {names['description'].get(c, '')}".strip()) for c in volume.index[:CHOICES]
    ]
    if product not in volume.index:
        product = str(volume.index[0])
    fc = fc.assign(category=fc["stock_code"].map(cat_of).fillna("Unknown"))
    categories = sorted(fc["category"].unique().tolist())
    if category not in categories:
        category = str(fc.loc[fc["stock_code"] == product, "category"].iloc[0])
    actual = _actuals(home)
    start = fc["week_start"].min() - pd.Timedelta(weeks=HISTORY_WEEKS)
    rows_of = home.cached(
        "actual_rows",
        [*home.clean_deps, feedback_dir(home.settings)],
        lambda: actual.groupby("stock_code", observed=True).indices,
    )

    def actual_of(codes: set[str]) -> pd.DataFrame:
        picked = [rows_of[c] for c in codes if c in rows_of]
        if not picked:
            return actual.iloc[0:0]
        return actual.iloc[np.concatenate(picked)]

    p_chart = _chart(
        f"{product} {names['description'].get(product, '')}"[:60],
        actual_of({str(product)}),
        fc[fc["stock_code"] == product],
        start,
    )
    in_cat = fc[fc["category"] == category]
    codes = set(in_cat["stock_code"])
    cat_fc = in_cat.groupby("week_start")[["p10", "p50", "p90"]].sum().reset_index()
    cat_actual = actual_of(codes).groupby("week_start")["units"].sum().reset_index()
    c_chart = _chart(
        f"Category {category}: sum over its {len(codes)} forecast products",
        cat_actual,
        cat_fc,
        start,
    )
    window = (
        f"forecasts logged {fc['ts'].min():%Y-%m-%d %H:%M} to {fc['ts'].max():%Y-%m-%d %H:%M} UTC "
        f"for weeks {fc['week_start'].min():%Y-%m-%d} to {fc['week_start'].max():%Y-%m-%d}; "
        f"actuals from {start:%Y-%m-%d}"
    )
    return ForecastView(
        choices,
        categories,
        product,
        category,
        p_chart,
        c_chart,
        window,
        "Category bands add up product P10 and P90 (wider than the true interval of the sum).",
    )
