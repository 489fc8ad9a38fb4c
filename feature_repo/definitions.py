"""Feast CLI entry point: exposes the objects ShelfOps defines in `shelfops.features.definitions`.

Feature lists are written once, there; this file only points the Feast CLI at the offline sources
under ``$SHELFOPS_HOME/features``.
"""

import os
from pathlib import Path

from shelfops.features.definitions import build_definitions

(
    product,
    customer,
    product_weekly_sales,
    customer_consent,
    customer_behaviour,
    product_catalog,
    demand_v1,
    recs_v1,
    merch_v1,
) = build_definitions(Path(os.environ.get("SHELFOPS_HOME", "local_outputs")) / "features")
