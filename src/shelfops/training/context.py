"""What training and evaluation read: clean tables, the weekly panel and the feature source."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shelfops.features.definitions import DEMAND_SERVICE, RECS_SERVICE
from shelfops.settings import Settings

Progress = Callable[[str], None]
WEEK = pd.Timedelta(days=7)


class FeatureSource:
    """What the models need from the feature store (``FeatureRepo`` satisfies it)."""

    def feature_names(self, service: str) -> list[str]:  # pragma: no cover - protocol
        """Feature names of a service."""
        raise NotImplementedError

    def historical(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover
        """Point-in-time rows."""
        raise NotImplementedError


@dataclass
class Context:
    """Everything both tasks read: clean tables, the weekly panel, the feature source."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    products: pd.DataFrame
    panel: pd.DataFrame
    source: Any  # FeatureSource-like (FeatureRepo)
    data_end: pd.Timestamp  # Monday after the last complete week
    timings: dict[str, float] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)  # results computed once per run


def monday(ts: pd.Timestamp | str) -> pd.Timestamp:
    """The Monday 00:00 on or before ``ts`` (naive)."""
    t = pd.Timestamp(ts).tz_localize(None).normalize()
    return t - pd.Timedelta(days=t.weekday())


def feature_rows(source: Any, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time feature rows for ``entity_df`` (key, timestamp), sorted by key and time."""
    out = source.historical(service, entity_df)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    key = entity_df.columns[0]
    # Feast does not promise row order; sorting keeps training deterministic.
    return out.sort_values([key, "event_timestamp"], kind="stable").reset_index(drop=True)


def utc(ts: pd.Series | pd.Timestamp | np.ndarray) -> Any:
    """Naive timestamps as UTC (Feast entity rows need them)."""
    if isinstance(ts, pd.Timestamp):
        return ts.tz_localize("UTC")
    return pd.to_datetime(ts).dt.tz_localize("UTC")


def demand_rows(
    ctx: Context, origins: list[pd.Timestamp], codes_per_origin: dict[pd.Timestamp, list[str]]
) -> pd.DataFrame:
    """``demand_v1`` rows for the given products at each origin."""
    ent = pd.DataFrame(
        {
            "stock_code": [c for o in origins for c in codes_per_origin[o]],
            "event_timestamp": [o for o in origins for _ in codes_per_origin[o]],
        }
    )
    if ent.empty:
        return ent
    ent["event_timestamp"] = utc(ent["event_timestamp"])
    return feature_rows(ctx.source, DEMAND_SERVICE, ent)


def recs_rows(ctx: Context, customers: list[str], at: pd.Timestamp) -> pd.DataFrame:
    """``recs_v1`` rows for ``customers`` as of ``at``."""
    if not customers:
        return pd.DataFrame(columns=["customer_id", "event_timestamp"])
    ent = pd.DataFrame({"customer_id": customers, "event_timestamp": utc(at)})
    rows = feature_rows(ctx.source, RECS_SERVICE, ent)
    return rows


def load_context(settings: Settings, say: Progress, build_features: bool = True) -> Context:
    """Read the clean tables of a home, build feature tables and apply the Feast repo.

    Args:
        settings: Settings whose home holds ingested clean data.
        say: Progress messages.
        build_features: Rebuild the feature tables and apply the repo first.

    Returns:
        The context.
    """
    from shelfops.data.ingest import load_clean
    from shelfops.features.build import build_feature_tables, weekly_sales
    from shelfops.features.store import FeatureRepo

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    clean = load_clean(settings.root)
    tx = clean["transactions"]
    if build_features:
        say("building feature tables")
        build_feature_tables(clean, settings.features_dir)
    repo = FeatureRepo(settings)
    if build_features:
        say("applying the Feast repo")
        repo.apply()
    panel = weekly_sales(tx)
    panel["stock_code"] = panel["stock_code"].astype(str)
    last_day = pd.Timestamp(tx["invoice_date"].max()).normalize()
    end = monday(last_day)
    if last_day.weekday() == 6:  # the last week is complete
        end = end + WEEK
    panel = panel[panel["week_start"] < end]
    timings["features_s"] = time.perf_counter() - t0
    return Context(
        transactions=tx,
        customers=clean["customers"],
        products=clean["products"],
        panel=panel,
        source=repo,
        data_end=end,
        timings=timings,
    )


def data_window(ctx: Context) -> dict[str, str]:
    """First and last day of the data a model is trained on.

    Args:
        ctx: Data context.

    Returns:
        ``{"start": YYYY-MM-DD, "end": YYYY-MM-DD}``.
    """
    first_day = str(pd.Timestamp(ctx.transactions["invoice_date"].min()).date())
    return {"start": first_day, "end": str((ctx.data_end - pd.Timedelta(days=1)).date())}


def clean_json(obj: Any) -> Any:
    """JSON-able copy: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
