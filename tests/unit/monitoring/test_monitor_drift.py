"""PSI and the two-sample KS test behave as the textbook says; compare() needs both to agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shelfops.monitoring.drift import compare, ks_2samp, psi, psi_categorical

pytestmark = pytest.mark.unit


def test_psi_is_zero_for_identical_and_large_for_shifted() -> None:
    """PSI of a sample against itself is 0; a one-sigma mean shift exceeds the 0.2 threshold."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-9)
    assert psi(ref, rng.normal(size=5000)) < 0.05
    assert psi(ref, rng.normal(1.0, 1.0, size=5000)) > 0.2


def test_psi_categorical_counts_new_categories() -> None:
    """A category never seen in training counts as drift."""
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    assert psi_categorical(ref, ref) == pytest.approx(0.0, abs=1e-9)
    assert psi_categorical(ref, pd.Series(["a"] * 50 + ["new"] * 50)) > 0.2


def test_ks_matches_known_values() -> None:
    """D is the largest CDF gap; p-values are ~uniform under the null and tiny under a shift."""
    d, _ = ks_2samp(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.5, 4.5, 5.5, 6.5]))
    assert d == pytest.approx(0.75)
    rng = np.random.default_rng(3)
    ps = [ks_2samp(rng.normal(size=300), rng.normal(size=300))[1] for _ in range(300)]
    assert 0.02 <= np.mean(np.array(ps) < 0.05) <= 0.09  # about 5% below 0.05
    assert ks_2samp(rng.normal(size=300), rng.normal(0.5, 1, size=300))[1] < 1e-6
    assert ks_2samp(np.array([]), np.array([1.0])) == (0.0, 1.0)


def test_compare_flags_only_real_shifts_and_respects_min_samples() -> None:
    """A shifted column is flagged, an unchanged one is not, a thin one is not judged."""
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"f.a": rng.normal(size=3000), "f.b": rng.poisson(3, 3000).astype(float)})
    cur = pd.DataFrame({"f.a": rng.normal(1.5, 1, 800), "f.b": rng.poisson(3, 800).astype(float)})
    out = {
        d.feature: d
        for d in compare(ref, cur, ["f.a", "f.b"], psi_max=0.2, alpha=0.01, min_samples=200)
    }
    assert out["f.a"].drifted and not out["f.b"].drifted
    thin = compare(ref, cur.head(50), ["f.a"], psi_max=0.2, alpha=0.01, min_samples=200)
    assert not thin[0].judged and not thin[0].drifted
