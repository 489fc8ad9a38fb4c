"""Example requests that work against the current home's data (printed for new users)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from shelfops.settings import Settings


def example_ids(settings: Settings) -> tuple[str, list[str]]:
    """A customer with history and two products that sell now, read from the offline features.

    The products are the two best sellers of the last four weeks (``units_mean_4w`` at the
    newest week) among those not discontinued, so the printed forecast shows real demand
    instead of a product with a flat zero forecast or no history at all.

    Returns:
        ``(customer_id, stock_codes)``; placeholders when the home has no features yet.
    """
    customer, codes = "12345", ["85123A"]
    behaviour = settings.features_dir / "customer_behaviour.parquet"
    weekly = settings.features_dir / "product_weekly.parquet"
    catalog = settings.features_dir / "product_catalog.parquet"
    if behaviour.exists():
        ids = pd.read_parquet(behaviour, columns=["customer_id"])["customer_id"]
        if len(ids):
            customer = str(ids.value_counts().index[0])
    if weekly.exists() and catalog.exists():
        try:
            rows = pd.read_parquet(
                weekly,
                columns=["stock_code", "event_timestamp", "units_mean_4w"],
                filters=[("units_mean_4w", ">", 0)],
            )
        except (KeyError, ValueError):  # a home with no sales writes a table with no columns
            rows = pd.DataFrame()
        if len(rows):
            cat = pd.read_parquet(catalog, columns=["stock_code", "discontinued"])
            gone = set(cat.loc[cat["discontinued"], "stock_code"].astype(str))
            now = rows[rows["event_timestamp"] == rows["event_timestamp"].max()]
            now = now[~now["stock_code"].astype(str).isin(gone)]
            best = now.sort_values(["units_mean_4w", "stock_code"], ascending=[False, True])
            if len(best):
                codes = best["stock_code"].astype(str).head(2).tolist()
    return customer, codes


def example_requests(settings: Settings, recs_url: str | None, demand_url: str | None) -> list[str]:
    """``curl`` lines for the friendly and V2 endpoints of the given base URLs."""
    customer, codes = example_ids(settings)
    lines: list[str] = []

    def post(url: str, body: Mapping[str, object]) -> str:
        return f"curl -s -X POST {url} -H 'content-type: application/json' -d '{json.dumps(body)}'"

    if recs_url:
        lines.append(post(f"{recs_url}/recommend", {"customer_id": customer, "k": 5}))
        v2 = {
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer]}
            ]
        }
        lines.append(post(f"{recs_url}/v2/models/recs/infer", v2))
    if demand_url:
        lines.append(post(f"{demand_url}/forecast", {"stock_codes": codes, "horizon": 4}))
        v2 = {
            "inputs": [
                {"name": "stock_code", "datatype": "BYTES", "shape": [len(codes)], "data": codes}
            ]
        }
        lines.append(post(f"{demand_url}/v2/models/demand/infer", v2))
    for url in (recs_url, demand_url):
        if url:
            lines.append(f"curl -s {url}/metrics | grep shelfops_")
    return lines
