"""Shared fixtures: a small generated retailer, ingested once per session, and one trained home.

The trained home is built once per session and shared by the serving and browser suites: models
are trained by the real CLI in a subprocess (so BentoML's home is set before BentoML is imported
there).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shelfops.data.generate import GeneratorConfig, SyntheticRetailer, generate
from shelfops.data.ingest import IngestResult, ingest, load_clean
from shelfops.settings import Settings

SMALL = GeneratorConfig(
    lines=12_000, customers=400, products=150, years=2.0, end_date=dt.date(2026, 11, 15), seed=11
)
AS_OF = dt.datetime(2026, 11, 20)


@pytest.fixture(scope="session")
def small_retailer() -> SyntheticRetailer:
    """A small two-year synthetic retailer (deterministic)."""
    return generate(SMALL)


@pytest.fixture(scope="session")
def small_exports(
    small_retailer: SyntheticRetailer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The small retailer written as CSV exports."""
    return small_retailer.write(tmp_path_factory.mktemp("exports"))


def make_home(tmp_path: Path, exports: dict[str, Path]) -> tuple[Settings, IngestResult]:
    """A fresh ShelfOps home with the exports ingested."""
    settings = Settings(home=tmp_path / "home")
    result = ingest(
        exports["transactions"],
        settings.root,
        customers_path=exports["customers"],
        products_path=exports["products"],
        as_of=AS_OF,
    )
    return settings, result


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory, small_exports) -> Settings:
    """Ingested data, Feast applied and materialized (SQLite), both models registered."""
    from shelfops.features.build import build_feature_tables
    from shelfops.features.store import FeatureRepo

    settings, _ = make_home(tmp_path_factory.mktemp("served"), small_exports)
    build_feature_tables(load_clean(settings.root), settings.features_dir)
    repo = FeatureRepo(settings)
    repo.apply()
    repo.materialize()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shelfops.cli.main",
            "train",
            "--demand-margin",
            "-1",
            "--recs-margin",
            "-1",
            "--accept-served-gap",
        ],
        env={**os.environ, "SHELFOPS_HOME": str(settings.root)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return settings
