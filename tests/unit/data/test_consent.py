"""Consent policy decides missing records; opted-out customers leave no behaviour features."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import make_home

from shelfops.data.consent import resolve_consent
from shelfops.data.ingest import load_clean
from shelfops.features.build import customer_behaviour_features, weekly_sales

pytestmark = pytest.mark.unit


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "opted_out_sale": pd.array([True, False, None], dtype="boolean"),
            "opted_out_personalization": pd.array([False, True, None], dtype="boolean"),
        }
    )


def test_opt_out_policy_allows_customers_without_a_record() -> None:
    """Under opt_out (the CCPA default) a missing record means allowed."""
    out = resolve_consent(_customers(), "opt_out")
    assert out["opted_out_personalization"].tolist() == [False, True, False]
    assert out["consent_recorded"].tolist() == [True, True, False]


def test_opt_in_policy_excludes_customers_without_a_record() -> None:
    """Under opt_in a missing record means opted out of sale and personalization."""
    out = resolve_consent(_customers(), "opt_in")
    assert out["opted_out_personalization"].tolist() == [False, True, True]
    assert out["opted_out_sale"].tolist() == [True, False, True]


def test_unknown_policy_is_rejected() -> None:
    """A typo in the policy is an error, not a silent default."""
    with pytest.raises(ValueError, match="opt_out or opt_in"):
        resolve_consent(_customers(), "maybe")


def test_opted_out_customers_have_no_behaviour_features(tmp_path: Path, small_exports) -> None:
    """Customers opted out of personalization are absent from recommendation inputs."""
    settings, _ = make_home(tmp_path, small_exports)
    clean = load_clean(settings.root)
    customers = clean["customers"]
    opted_out = set(customers.loc[customers["opted_out_personalization"], "customer_id"])
    buyers = set(clean["transactions"]["customer_id"].dropna())
    assert opted_out & buyers, "the sample must contain opted-out buyers for this test to bite"
    features = customer_behaviour_features(
        clean["transactions"], customers, clean["products"], weekly_sales(clean["transactions"])
    )
    assert not set(features["customer_id"]) & opted_out
    assert set(features["customer_id"]) == buyers - opted_out
