"""Example requests that work against the current home's data (printed for new users)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from shelfops.settings import Settings


def example_ids(settings: Settings) -> tuple[str, list[str]]:
    """A customer with history and a few products on sale, read from the offline features.

    Returns:
        ``(customer_id, stock_codes)``; placeholders when the home has no features yet.
    """
    customer, codes = "12345", ["85123A"]
    behaviour = settings.features_dir / "customer_behaviour.parquet"
    catalog = settings.features_dir / "product_catalog.parquet"
    if behaviour.exists():
        ids = pd.read_parquet(behaviour, columns=["customer_id"])["customer_id"]
        if len(ids):
            customer = str(ids.value_counts().index[0])
    if catalog.exists():
        cat = pd.read_parquet(catalog, columns=["stock_code", "discontinued", "inventory_on_hand"])
        live = cat[~cat["discontinued"]].sort_values("inventory_on_hand", ascending=False)
        if len(live):
            codes = live["stock_code"].astype(str).head(2).tolist()
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
