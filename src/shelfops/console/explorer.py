"""The Recommendation explorer: what the running service returns for a customer now, and why.

The console does not recommend by itself: it calls the recommendation service over HTTP
(``POST /recommend``) and shows its answer, so what a merchandiser sees is what customers get.
The customer's purchase history is shown beside it only when they allow personalization: for a
customer opted out of it, the page shows the non-personal list the service returned and none of
their history (not even whether they have any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from shelfops.console.home import HomeData

HISTORY_LINES = 15


@dataclass
class Exploration:
    """What the explorer shows for one customer."""

    customer_id: str
    service_url: str | None
    discover: bool = False
    """The discover list (no regulars) instead of the main list."""
    error: str | None = None
    opted_out: bool = False
    response: dict[str, Any] | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def recs_service_url(home: HomeData, configured: str | None) -> str | None:
    """The recommendation service to ask: the configured URL or the local runtime's endpoint."""
    if configured:
        return configured.rstrip("/")
    from shelfops.rollout.backends.local import LocalBackend
    from shelfops.settings import RolloutSettings

    try:
        return LocalBackend(home.settings, RolloutSettings()).observe("recs").endpoint
    except (OSError, ValueError, KeyError):
        return None


def allowed_customers(home: HomeData) -> set[str]:
    """Known customers who allow personalization (:mod:`shelfops.data.consent` decides)."""
    from shelfops.data.consent import personalizable_customers

    return home.cached(
        "consent", home.clean_deps, lambda: personalizable_customers(home.clean()["customers"])
    )


def opted_out_of_personalization(home: HomeData, customer_id: str) -> bool:
    """Whether a known customer opted out of personalization (ingest resolved the policy).

    A customer the home does not know has no history to hide and gets the cold-start list.
    """
    known = home.cached(
        "known_customers",
        home.clean_deps,
        lambda: set(home.clean()["customers"]["customer_id"].astype(str)),
    )
    return customer_id in known and customer_id not in allowed_customers(home)


def purchase_history(home: HomeData, customer_id: str) -> list[dict[str, Any]]:
    """The customer's newest purchase lines (call only for customers who allow personalization)."""
    tx = home.clean()["transactions"]
    rows_of = home.cached(
        "lines_by_customer",
        home.clean_deps,
        lambda: tx.groupby(tx["customer_id"].astype(str), observed=True).indices,
    )
    mine = tx.iloc[rows_of.get(customer_id, [])]
    if "is_product" in mine:
        mine = mine[mine["is_product"].astype(bool)]
    mine = mine.sort_values("invoice_date", ascending=False).head(HISTORY_LINES)
    return [
        {
            "date": f"{pd.Timestamp(r.invoice_date):%Y-%m-%d}",
            "stock_code": str(r.stock_code),
            "description": str(r.description),
            "quantity": int(r.quantity),
            "cancelled": bool(getattr(r, "is_cancellation", False)),
        }
        for r in mine.itertuples()
    ]


def explore(
    home: HomeData,
    customer_id: str,
    service_url: str | None,
    k: int,
    timeout_s: float,
    discover: bool = False,
) -> Exploration:
    """Ask the service for ``customer_id``'s list (main or discover) and what the page shows."""
    found = Exploration(customer_id=customer_id, service_url=service_url, discover=discover)
    found.opted_out = opted_out_of_personalization(home, customer_id)
    if service_url is None:
        found.error = (
            "no recommendation service is running: start one with `shelfops quickstart` or "
            "`shelfops serve`, or set SHELFOPS_CONSOLE_RECS_URL"
        )
    else:
        try:
            reply = httpx.post(
                f"{service_url}/recommend",
                json={"customer_id": customer_id, "k": k, "explain": True, "discover": discover},
                timeout=timeout_s,
            )
        except httpx.HTTPError as exc:
            found.error = f"the recommendation service at {service_url} did not answer: {exc}"
        else:
            if reply.status_code != 200:
                try:
                    detail = reply.json().get("error", reply.text)
                except ValueError:
                    detail = reply.text
                found.error = f"the service answered {reply.status_code}: {str(detail)[:300]}"
            else:
                found.response = reply.json()
                found.items = list(found.response.get("items", []))
                found.removed = list(found.response.get("removed", []) or [])
    if found.opted_out:
        # Only the non-personal list, none of the customer's history or personal removals.
        found.removed = [r for r in found.removed if r.get("source") != "personal"]
    else:
        found.history = purchase_history(home, customer_id)
    return found


def example_customers(home: HomeData, n: int = 6) -> list[str]:
    """A few customers with many purchases who allow personalization (links to try)."""

    def compute() -> list[str]:
        allowed = allowed_customers(home)
        ids = home.clean()["transactions"]["customer_id"].dropna().astype(str)
        top = ids[ids.isin(allowed)].value_counts().index[:n]
        return [str(c) for c in top]

    return home.cached("examples", home.clean_deps, compute)
