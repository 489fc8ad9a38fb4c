"""`shelfops privacy forget` leaves no trace of the customer anywhere, and says what it did."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from shelfops.cli.main import app
from shelfops.data.generate import GeneratorConfig, generate
from shelfops.data.privacy import _data_files, _id_column
from shelfops.features.definitions import RECS_SERVICE
from shelfops.features.store import FeatureRepo
from shelfops.settings import Settings

pytestmark = pytest.mark.integration


def test_forget_removes_every_trace_and_audits(tmp_path, small_exports) -> None:
    """After quickstart-like setup, forgetting a buyer leaves zero rows in files and online."""
    home = tmp_path / "home"
    runner = CliRunner()
    for args in (
        [
            "data",
            "ingest",
            str(small_exports["transactions"]),
            "--customers",
            str(small_exports["customers"]),
            "--products",
            str(small_exports["products"]),
            "--as-of",
            "2026-11-20",
        ],
        ["features", "apply"],
        ["features", "materialize"],
    ):
        result = runner.invoke(app, ["--home", str(home), *args])
        assert result.exit_code == 0, result.output
    generate(GeneratorConfig(lines=2000, customers=50, products=30)).write(home / "raw" / "gen")
    settings = Settings(home=home)
    tx = pd.read_parquet(settings.clean_dir / "transactions.parquet")
    victim = str(tx["customer_id"].value_counts().index[0])
    assert FeatureRepo(settings).online(RECS_SERVICE, [{"customer_id": victim}])["top_items"][0]

    result = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "privacy",
            "forget",
            "--customer-id",
            victim,
            "--actor",
            "dpo@example.com",
        ],
    )
    assert result.exit_code == 0, result.output

    files_checked = 0
    for path in _data_files(home):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        column = _id_column(list(frame.columns))
        if column is None:
            continue
        files_checked += 1
        ids = frame[column].astype("string").str.replace(r"\.0+$", "", regex=True)
        assert not (ids == victim).any(), path
    assert files_checked >= 6
    online = FeatureRepo(settings).online(RECS_SERVICE, [{"customer_id": victim}])
    assert online["top_items"] == [None] and online["opted_out_sale"] == [None]
    audit = [json.loads(line) for line in settings.audit_log.read_text().splitlines()]
    assert audit[-1]["customer_id"] == victim and audit[-1]["actor"] == "dpo@example.com"
    assert audit[-1]["removed"]["clean/transactions.parquet"] > 0
    assert audit[-1]["removed"]["online_store"] >= 1
