"""The markdown reference price: each product's highest price over its last 13 weeks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shelfops.features.build import _grouped_rolling_max

pytestmark = pytest.mark.unit


def test_grouped_rolling_max_is_pandas_grouped_rolling_max() -> None:
    """Same values as ``groupby().rolling(w, min_periods=1).max()``, gaps and group edges too."""
    rng = np.random.default_rng(3)
    sizes = [1, 2, 13, 14, 40, 5]
    groups = pd.Series(np.repeat([f"p{i}" for i in range(len(sizes))], sizes), dtype="string")
    values = rng.uniform(1.0, 9.0, len(groups))
    values[rng.random(len(groups)) < 0.3] = np.nan  # weeks without a sale
    values[sizes[0] : sizes[0] + sizes[1]] = np.nan  # a product never priced
    expected = (
        pd.Series(values)
        .groupby(groups.to_numpy(), sort=False)
        .rolling(13, min_periods=1)
        .max()
        .reset_index(level=0, drop=True)
        .sort_index()
        .to_numpy()
    )
    got = _grouped_rolling_max(values, groups, 13)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[sizes[0] : sizes[0] + sizes[1]]).all()


def test_grouped_rolling_max_never_reaches_into_the_previous_product() -> None:
    """A cheap product right after an expensive one keeps its own reference price."""
    groups = pd.Series(["a", "a", "b", "b"])
    got = _grouped_rolling_max(np.array([100.0, 90.0, 2.0, 1.0]), groups, 13)
    assert got.tolist() == [100.0, 100.0, 2.0, 2.0]
