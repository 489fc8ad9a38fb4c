"""Typed, validated request and response bodies of the friendly JSON endpoints.

Limits that depend on the deployment (largest ``k``, largest batch, the model's horizon) are
checked by the servers against ``ServingSettings`` and the loaded model; the shapes and the
hard bounds live here so that they appear in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendContext(_Strict):
    """Optional shopping context."""

    category: Code | None = Field(None, description="Only recommend items of this category.")
    exclude_stock_codes: list[Code] = Field(
        default_factory=list,
        max_length=256,
        description="Items not to recommend (for example, already in the basket).",
    )


class RecommendRequest(_Strict):
    """``POST /recommend``."""

    customer_id: Code = Field(description="The customer; unknown customers get cold start.")
    k: int = Field(10, ge=1, le=1000, description="How many items to return.")
    context: RecommendContext | None = Field(None, description="Optional shopping context.")
    explain: bool = Field(
        False, description="Also list the candidates the merchandising rules removed, and why."
    )
    discover: bool = Field(
        False,
        description="The discover list: the model's best items that are not among the "
        "customer's regulars (their most bought items), for a 'new to you' shelf.",
    )


ItemSource = Literal["personal", "popularity_top_up", "cold_start", "non_personal"]
"""Where a recommended item came from: the personal model; popularity filling a personal list the
rules or a short history left short; popularity for a customer with no history (cold start);
popularity for a customer who opted out of personalization or a degraded answer."""


class RecommendedItem(BaseModel):
    """One recommended item with a reason a merchandiser can read."""

    stock_code: str
    description: str
    category: str
    score: float | None = Field(description="Model score; null for popularity fallbacks.")
    reason: str = Field(description='Why, e.g. "often bought with Lantern".')
    boosted: bool = Field(description="Moved up by the surplus-inventory rule.")
    source: ItemSource = Field(
        description="personal (the model), popularity_top_up (filling a personal list), "
        "cold_start (no history yet) or non_personal (opted out, or a degraded answer)."
    )


class RemovedItem(BaseModel):
    """A candidate a merchandising rule removed (``explain: true`` only)."""

    stock_code: str
    rule: str = Field(description="The rule that removed it, e.g. discount_affinity.")
    reason: str = Field(description='Why, e.g. "3 units on hand, below min_inventory 5".')
    source: ItemSource = Field(description="Which list it was removed from.")


class RecommendResponse(BaseModel):
    """Recommendations for one customer."""

    request_id: str
    customer_id: str
    model_version: str
    personalized: bool = Field(description="False for cold start, opted-out and fallbacks.")
    degraded: bool = Field(description="True when served by the fallback, not the model.")
    degraded_reason: str | None = None
    items: list[RecommendedItem]
    removed: list[RemovedItem] | None = Field(
        None, description="With explain: every candidate a rule removed, best first."
    )


class ForecastRequest(_Strict):
    """``POST /forecast``."""

    stock_codes: list[Code] = Field(min_length=1, description="Products to forecast.")
    horizon: int = Field(13, ge=1, le=104, description="Weeks ahead (at most the model's).")


class WeekForecast(BaseModel):
    """One product-week."""

    week_start: str = Field(description="Monday of the week (ISO date).")
    p10: float
    p50: float
    p90: float


class ProductForecast(BaseModel):
    """The forecast of one product."""

    stock_code: str
    status: str = Field(description='"ok", or "no_data" when nothing is known of the product.')
    source: str = Field(
        description='"model", a baseline used as a fallback, or a combination ("model+ma13").'
    )
    weeks: list[WeekForecast]


class ForecastResponse(BaseModel):
    """Forecasts for a batch of products."""

    request_id: str
    model_version: str
    degraded: bool
    degraded_reason: str | None = None
    forecasts: list[ProductForecast]


class ErrorResponse(BaseModel):
    """Every 4xx body: the V2 protocol's ``error`` field, plus details when there are any."""

    error: str
    details: list[dict[str, object]] | None = None
