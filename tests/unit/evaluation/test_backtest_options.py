"""``run_backtest(models=...)``: one model alone, checked before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfops.evaluation.backtest import run_backtest
from shelfops.settings import Settings

pytestmark = pytest.mark.unit


def test_unknown_models_and_served_without_recommender_are_rejected_up_front(
    tmp_path: Path,
) -> None:
    """A bad ``models`` value or ``served`` with demand only fails before importing anything."""
    settings = Settings(home=tmp_path / "home")
    missing = tmp_path / "never-read.csv"
    with pytest.raises(ValueError, match="unknown models 'forecast'"):
        run_backtest(missing, None, settings, models="forecast")
    with pytest.raises(ValueError, match="--served replays the recommender"):
        run_backtest(missing, None, settings, models="demand", served=True)
    assert not (tmp_path / "home").exists()
