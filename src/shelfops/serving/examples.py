"""Example requests that work against the current home's data (printed for new users)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from shelfops.features.build import newest_product_rows
from shelfops.settings import Settings


def example_ids(settings: Settings) -> tuple[str, list[str]]:
    """A customer with history and two products that sell now, read from the offline features.

    The products are those among the most customers' regular items (``top_items`` of each
    customer's newest behaviour row) that sold in the last four weeks and are not discontinued:
    staples a merchandiser recognises, with real demand to forecast. Ranking by units instead
    picks oddities such as The Complete Journey's fuel lines, counted in millions of units.

    Returns:
        ``(customer_id, stock_codes)``; placeholders when the home has no features yet.
    """
    customer, codes = "12345", ["85123A"]
    behaviour = settings.features_dir / "customer_behaviour.parquet"
    weekly = settings.features_dir / "product_weekly.parquet"
    catalog = settings.features_dir / "product_catalog.parquet"
    regulars = pd.Series(dtype="int64")
    if behaviour.exists():
        rows = pd.read_parquet(behaviour, columns=["customer_id", "event_timestamp", "top_items"])
        if len(rows):
            customer = str(rows["customer_id"].value_counts().index[0])
            newest = rows.sort_values("event_timestamp").groupby("customer_id").tail(1)
            regulars = newest["top_items"].explode().dropna().astype(str).value_counts()
    if weekly.exists() and catalog.exists():
        now = newest_product_rows(weekly, ["stock_code", "units_mean_4w"])
        if len(now):
            cat = pd.read_parquet(catalog, columns=["stock_code", "discontinued"])
            gone = set(cat.loc[cat["discontinued"], "stock_code"].astype(str))
            now = now.assign(stock_code=now["stock_code"].astype(str))
            now = now[(now["units_mean_4w"] > 0) & ~now["stock_code"].isin(gone)]
            now = now.assign(customers=now["stock_code"].map(regulars).fillna(0))
            best = now.sort_values(
                ["customers", "units_mean_4w", "stock_code"], ascending=[False, False, True]
            )
            if len(best):
                codes = best["stock_code"].head(2).tolist()
    return customer, codes


def example_requests(settings: Settings, recs_url: str | None, demand_url: str | None) -> list[str]:
    """``curl`` lines for the friendly and V2 endpoints of the given base URLs."""
    customer, codes = example_ids(settings)
    lines: list[str] = []

    def post(url: str, body: Mapping[str, object]) -> str:
        return f"curl -s -X POST {url} -H 'content-type: application/json' -d '{json.dumps(body)}'"

    if recs_url:
        lines.append(post(f"{recs_url}/recommend", {"customer_id": customer, "k": 5}))
        discover = {"customer_id": customer, "k": 5, "discover": True}
        lines.append(post(f"{recs_url}/recommend", discover))
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
