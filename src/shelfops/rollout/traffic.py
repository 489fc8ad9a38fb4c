"""The traffic sample Locust replays: real customer ids and product codes from the clean tables.

Frequent buyers appear more often (sampled by invoice count), best sellers more often (sampled by
units sold in the last 13 weeks), and a few unknown customers exercise the cold-start path, so the
load resembles a storefront's rather than one id hammered in a loop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shelfops.settings import Settings

SAMPLE_ENV = "SHELFOPS_LOADTEST_SAMPLE"


def build_sample(settings: Settings, size: int = 500, seed: int | None = None) -> dict[str, Any]:
    """Draw customer ids and stock codes from the clean tables.

    Args:
        settings: Settings (the clean tables live under the home).
        size: How many ids of each kind to draw.
        seed: Random seed (default: the settings' seed).

    Returns:
        ``{"customers": [...], "stock_codes": [...], "categories": [...], "source": ...}``.

    Raises:
        FileNotFoundError: If nothing was ingested yet (the message says what to run).
    """
    import pandas as pd

    from shelfops.data.consent import personalizable_customers
    from shelfops.data.ingest import load_clean

    tables = load_clean(settings.root)
    tx = tables["transactions"]
    tx = tx[tx["is_product"] & ~tx["is_cancellation"]]
    rng_seed = settings.seed if seed is None else seed
    buyers = tx.dropna(subset=["customer_id"]).groupby("customer_id")["invoice"].nunique()
    customers = tables["customers"]
    allowed = personalizable_customers(customers)
    buyers = buyers[buyers.index.astype(str).isin(allowed)]
    drawn = buyers.sample(n=size, replace=True, weights=buyers, random_state=rng_seed)
    recent = tx[tx["invoice_date"] >= tx["invoice_date"].max() - pd.Timedelta(weeks=13)]
    units = recent.groupby("stock_code")["quantity"].sum().clip(lower=1)
    codes = units.sample(n=size, replace=True, weights=units, random_state=rng_seed)
    cold = [f"NEW-{i:05d}" for i in range(max(1, size // 20))]
    return {
        "customers": [str(c) for c in drawn.index] + cold,
        "stock_codes": [str(c) for c in codes.index],
        "categories": sorted(str(c) for c in tables["products"]["category"].dropna().unique()),
        "source": str(settings.clean_dir),
    }


def write_sample(settings: Settings, path: Path, size: int = 500) -> Path:
    """Write :func:`build_sample` as JSON (the locustfile reads ``SHELFOPS_LOADTEST_SAMPLE``).

    Returns:
        The path written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(build_sample(settings, size)))
    os.replace(tmp, path)
    return path
