"""Shared fixtures: a small generated retailer, ingested once per session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shelfops.data.generate import GeneratorConfig, SyntheticRetailer, generate
from shelfops.data.ingest import IngestResult, ingest
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
