"""Feast objects: entities, sources, feature views and one FeatureService per model version.

This module is the only place feature lists are written. Training (``get_historical_features``)
and serving (``get_online_features``) both ask for a FeatureService by name, and models read the
feature names from the service, so a feature added here reaches both or neither.

Objects are built by a function (not at import time) because file sources need absolute paths,
which come from the settings.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float32, Int64, String

DEMAND_SERVICE = "demand_v1"
RECS_SERVICE = "recs_v1"
MERCH_SERVICE = "merch_v1"
CATALOG_VIEW = "product_catalog"
CONSENT_VIEW = "customer_consent"
BEHAVIOUR_VIEW = "customer_behaviour"
PRODUCT_VIEW = "product_weekly_sales"


def build_definitions(features_dir: Path) -> list[object]:
    """Build every Feast object for the feature tables in ``features_dir``.

    Args:
        features_dir: Folder holding the parquet sources from
            :func:`shelfops.features.build.build_feature_tables`.

    Returns:
        Entities, feature views and feature services, ready for ``FeatureStore.apply``.
    """
    root = features_dir.expanduser().resolve()
    product = Entity(
        name="product",
        join_keys=["stock_code"],
        value_type=ValueType.STRING,
        description="A product (stock code).",
    )
    customer = Entity(
        name="customer",
        join_keys=["customer_id"],
        value_type=ValueType.STRING,
        description="A known customer.",
    )

    product_weekly = FeatureView(
        name=PRODUCT_VIEW,
        entities=[product],
        ttl=timedelta(days=400),
        schema=[
            Field(name="units_last_week", dtype=Float32),
            Field(name="units_mean_4w", dtype=Float32),
            Field(name="units_mean_13w", dtype=Float32),
            Field(name="units_mean_52w", dtype=Float32),
            Field(name="units_same_week_last_year", dtype=Float32),
            Field(name="units_history_52w", dtype=Array(Float32)),
            Field(name="zero_share_13w", dtype=Float32),
            Field(name="weeks_since_first_sale", dtype=Int64),
            Field(name="avg_price_last_week", dtype=Float32),
            Field(name="price_ratio_13w", dtype=Float32),
            Field(name="markdown_weeks_13w", dtype=Int64),
            Field(name="revenue_13w", dtype=Float32),
            Field(name="display_stores_ahead", dtype=Array(Float32)),
            Field(name="mailer_stores_ahead", dtype=Array(Float32)),
        ],
        source=FileSource(
            name="product_weekly_source",
            path=str(root / "product_weekly.parquet"),
            timestamp_field="event_timestamp",
        ),
        description="Weekly product sales history, stamped the Monday after each week.",
    )
    consent = FeatureView(
        name=CONSENT_VIEW,
        entities=[customer],
        ttl=timedelta(0),
        schema=[
            Field(name="opted_out_sale", dtype=Bool),
            Field(name="opted_out_personalization", dtype=Bool),
        ],
        source=FileSource(
            name="customer_consent_source",
            path=str(root / "customer_consent.parquet"),
            timestamp_field="event_timestamp",
        ),
        description="Current consent flags (CCPA), valid for every point in time.",
    )
    behaviour = FeatureView(
        name=BEHAVIOUR_VIEW,
        entities=[customer],
        ttl=timedelta(days=730),
        schema=[
            Field(name="last_purchase_ts", dtype=Int64),
            Field(name="invoices_total", dtype=Int64),
            Field(name="invoices_90d", dtype=Int64),
            Field(name="monetary_90d", dtype=Float32),
            Field(name="avg_basket_lines", dtype=Float32),
            Field(name="discount_affinity", dtype=Float32),
            Field(name="favourite_category", dtype=String),
            Field(name="top_items", dtype=Array(String)),
            Field(name="top_item_counts", dtype=Array(Int64)),
            Field(name="top_item_last_ts", dtype=Array(Int64)),
        ],
        source=FileSource(
            name="customer_behaviour_source",
            path=str(root / "customer_behaviour.parquet"),
            timestamp_field="event_timestamp",
        ),
        description="Purchase behaviour of customers who allow personalization.",
    )
    catalog = FeatureView(
        name=CATALOG_VIEW,
        entities=[product],
        ttl=timedelta(0),
        schema=[
            Field(name="category", dtype=String),
            Field(name="inventory_on_hand", dtype=Int64),
            Field(name="markdown_count", dtype=Int64),
            Field(name="discontinued", dtype=Bool),
            Field(name="on_clearance", dtype=Bool),
            Field(name="on_promotion", dtype=Bool),
            Field(name="weeks_of_cover", dtype=Float32),
        ],
        source=FileSource(
            name="product_catalog_source",
            path=str(root / "product_catalog.parquet"),
            timestamp_field="event_timestamp",
        ),
        description="Current merchandising state of each product; read by the serving rules only.",
    )
    demand_v1 = FeatureService(
        name=DEMAND_SERVICE, features=[product_weekly], description="Inputs of demand model v1."
    )
    recs_v1 = FeatureService(
        name=RECS_SERVICE,
        features=[consent, behaviour],
        description="Inputs of recommendation model v1.",
    )
    merch_v1 = FeatureService(
        name=MERCH_SERVICE,
        features=[catalog],
        description="Product state the recommendation service's merchandising rules read.",
    )
    return [
        product,
        customer,
        product_weekly,
        consent,
        behaviour,
        catalog,
        demand_v1,
        recs_v1,
        merch_v1,
    ]
