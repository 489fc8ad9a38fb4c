"""Fixtures: an in-memory stand-in for the Feast repo built from the real feature functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from feast import FeatureService

from shelfops.features.build import (
    customer_behaviour_features,
    customer_consent_features,
    product_weekly_features,
    weekly_sales,
)
from shelfops.features.definitions import DEMAND_SERVICE, RECS_SERVICE, build_definitions


def service_features(name: str) -> list[str]:
    """Feature names of a FeatureService, read from the Feast object itself."""
    for obj in build_definitions(Path("/nonexistent")):
        if isinstance(obj, FeatureService) and obj.name == name:
            return [f.name for p in obj.feature_view_projections for f in p.features]
    raise KeyError(name)


def _asof(table: pd.DataFrame, entity_df: pd.DataFrame, key: str) -> pd.DataFrame:
    left = entity_df.copy()
    left["event_timestamp"] = pd.to_datetime(left["event_timestamp"], utc=True)
    left["_order"] = np.arange(len(left))
    right = table.copy()
    right["_ts"] = pd.to_datetime(right["event_timestamp"], utc=True)
    right = right.drop(columns="event_timestamp").sort_values("_ts")
    right[key] = right[key].astype(str)
    left[key] = left[key].astype(str)
    out = pd.merge_asof(
        left.sort_values("event_timestamp"),
        right,
        left_on="event_timestamp",
        right_on="_ts",
        by=key,
        direction="backward",
    )
    return out.sort_values("_order").drop(columns=["_order", "_ts"]).reset_index(drop=True)


class FakeSource:
    """Point-in-time lookups over the real feature tables, without a Feast registry."""

    def __init__(
        self,
        panel: pd.DataFrame,
        tx: pd.DataFrame | None = None,
        customers: pd.DataFrame | None = None,
        products: pd.DataFrame | None = None,
    ) -> None:
        self.demand = product_weekly_features(panel)
        self.behaviour = None
        self.consent = None
        if tx is not None and customers is not None and products is not None:
            self.behaviour = customer_behaviour_features(tx, customers, products, panel)
            self.consent = customer_consent_features(customers)

    def feature_names(self, service: str) -> list[str]:
        return service_features(service)

    def historical(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        if service == DEMAND_SERVICE:
            return _asof(self.demand, entity_df, "stock_code")
        assert service == RECS_SERVICE and self.behaviour is not None
        assert self.consent is not None
        out = _asof(self.behaviour, entity_df, "customer_id")
        consent = self.consent.drop(columns="event_timestamp").assign(
            customer_id=lambda c: c["customer_id"].astype(str)
        )
        return out.merge(consent, on="customer_id", how="left")


def clean_tx(lines: pd.DataFrame) -> pd.DataFrame:
    """Turn simple purchase lines into the clean-transactions shape."""
    tx = lines.copy()
    tx["invoice_date"] = pd.to_datetime(tx["invoice_date"]).astype("datetime64[us]")
    tx["description"] = tx.get("description", tx["stock_code"])
    tx["unit_price"] = tx.get("unit_price", 5.0)
    tx["quantity"] = tx.get("quantity", 1)
    tx["country"] = "United States"
    tx["customer_id"] = tx["customer_id"].astype("string")
    tx["is_cancellation"] = False
    tx["is_product"] = True
    return tx


@pytest.fixture(scope="session")
def fake_source_cls() -> Any:
    """The FakeSource class."""
    return FakeSource


def panel_from_units(units: dict[str, np.ndarray], start: str = "2022-01-03") -> pd.DataFrame:
    """A weekly panel from per-product unit arrays (price 10, revenue = 10 x units)."""
    frames = []
    for code, u in units.items():
        weeks = pd.date_range(start, periods=len(u), freq="7D").astype("datetime64[us]")
        frames.append(
            pd.DataFrame(
                {
                    "stock_code": code,
                    "week_start": weeks,
                    "units": u.astype(float),
                    "revenue": 10.0 * u,
                    "avg_price": 10.0,
                }
            )
        )
    panel = pd.concat(frames, ignore_index=True)
    panel["stock_code"] = panel["stock_code"].astype("string")
    return panel


@pytest.fixture(scope="session")
def make_clean_tx() -> Any:
    """The clean_tx helper."""
    return clean_tx


@pytest.fixture(scope="session")
def make_panel() -> Any:
    """The panel_from_units helper."""
    return panel_from_units


@pytest.fixture(scope="session")
def make_weekly_sales() -> Any:
    """The production weekly panel builder."""
    return weekly_sales
