"""Consent (CCPA): the one place that decides who may be personalised.

Ingest turns a missing consent record into a decision by policy (:func:`resolve_consent`); from
then on every stage asks this module, never a column of its own:

* features: behaviour rows exist only for :func:`personalizable_customers`;
* training and evaluation: feature rows of opted-out customers are dropped
  (:func:`drop_opted_out`), and the count is reported (:func:`opted_out_count`);
* serving and the shared Predictor: :func:`personalization_allowed` on the consent flag read
  from the feature store (a customer without a flag row has no record: allowed, because ingest
  has already applied the policy to everyone it knows).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

ConsentPolicy = Literal["opt_out", "opt_in"]

#: Opted out of personalization (the flag every stage reads).
PERSONALIZATION_OPT_OUT = "opted_out_personalization"
#: Opted out of sale/sharing.
SALE_OPT_OUT = "opted_out_sale"
#: Whether the customer had a consent record at all (set by :func:`resolve_consent`).
RECORDED = "consent_recorded"


def resolve_consent(customers: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Turn missing consent into a decision by policy and record whether a record existed.

    Under ``opt_out`` (the CCPA default) a customer without a record is allowed; under ``opt_in``
    a customer without a record is treated as opted out of both sale and personalization.

    Args:
        customers: Customers with nullable ``opted_out_sale`` and ``opted_out_personalization``.
        policy: ``opt_out`` or ``opt_in``.

    Returns:
        A copy with both flags as plain booleans and ``consent_recorded``.

    Raises:
        ValueError: On an unknown policy.
    """
    if policy not in ("opt_out", "opt_in"):
        raise ValueError(f"unknown consent policy {policy!r}; use opt_out or opt_in")
    out = customers.copy()
    recorded = out[SALE_OPT_OUT].notna() & out[PERSONALIZATION_OPT_OUT].notna()
    default = policy == "opt_in"
    for col in (SALE_OPT_OUT, PERSONALIZATION_OPT_OUT):
        out[col] = out[col].fillna(default).astype(bool)
    out[RECORDED] = recorded.astype(bool)
    return out


def personalization_allowed(flags: Iterable[Any] | pd.Series | np.ndarray) -> np.ndarray:
    """Which opt-out flags allow personalization (True/1 = opted out; null = no flag row).

    Args:
        flags: ``opted_out_personalization`` values, one per customer.

    Returns:
        Boolean array, True where personalization is allowed.
    """
    # Plain Python per value: this runs on every recommendation request, where building a
    # pandas Series would cost more than the decision itself.
    return np.array([_missing(v) or not bool(v) for v in flags], bool)


def _missing(value: Any) -> bool:
    """None, NaN or pd.NA: no consent flag row for this customer."""
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def rows_allowed(rows: pd.DataFrame) -> np.ndarray:
    """Which feature rows allow personalization (rows without the flag column: all).

    Args:
        rows: Feature rows, possibly with ``opted_out_personalization``.

    Returns:
        Boolean array, one per row.
    """
    if PERSONALIZATION_OPT_OUT not in rows:
        return np.ones(len(rows), bool)
    return personalization_allowed(rows[PERSONALIZATION_OPT_OUT])


def drop_opted_out(rows: pd.DataFrame) -> pd.DataFrame:
    """Feature rows of customers who allow personalization only.

    Args:
        rows: Feature rows, possibly with ``opted_out_personalization``.

    Returns:
        The allowed rows.
    """
    return rows[rows_allowed(rows)]


def personalizable_customers(customers: pd.DataFrame) -> set[str]:
    """Ids (as strings) of customers whose behaviour may be used.

    Args:
        customers: The clean customers table (consent resolved by ingest).

    Returns:
        The allowed customer ids.
    """
    ok = personalization_allowed(customers[PERSONALIZATION_OPT_OUT])
    return set(customers.loc[ok, "customer_id"].astype(str))


def opted_out_count(customers: pd.DataFrame) -> int:
    """How many customers opted out of personalization (0 without the column).

    Args:
        customers: The clean customers table.

    Returns:
        The count.
    """
    if PERSONALIZATION_OPT_OUT not in customers:
        return 0
    return int((~personalization_allowed(customers[PERSONALIZATION_OPT_OUT])).sum())
