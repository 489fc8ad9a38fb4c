"""`shelfops privacy forget` leaves no trace of the customer anywhere, and says what it did."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shelfops.cli.main import app
from shelfops.data.generate import GeneratorConfig, generate
from shelfops.features.definitions import RECS_SERVICE
from shelfops.features.store import FeatureRepo
from shelfops.models.recs import Recommendation
from shelfops.reports.html import write_report
from shelfops.rollout.traffic import write_sample
from shelfops.settings import Settings


def mentions(path: Path, customer_id: str) -> list[str]:
    """Where a file still names the customer: any cell of a table, any row of a database, any
    whole-token mention in anything else (found by reading the file, not the forget code)."""
    token = re.compile(rf"(?<![\w.-]){re.escape(customer_id)}(?![\w-]|\.\d)")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return [
            f"{path}:{col}"
            for col in frame.columns
            if frame[col].map(lambda v: str(v).strip().removesuffix(".0") == customer_id).any()
        ]
    if path.read_bytes()[:16] == b"SQLite format 3\x00":  # the online store; freed pages keep
        # old bytes until a vacuum, so rows are read through SQLite
        with sqlite3.connect(path) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            hits = []
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):
                    if any(
                        customer_id.encode() in bytes(str(v), "utf-8")
                        or (isinstance(v, bytes) and customer_id.encode() in v)
                        for v in row
                    ):
                        hits.append(f"{path}:{table}")
                        break
            return hits
    text = path.read_bytes().decode("utf-8", errors="ignore")
    return [f"{path}: {m.group(0)!r}" for m in token.finditer(text)][:3]


pytestmark = pytest.mark.integration


def test_forget_removes_every_trace_and_audits(tmp_path, small_exports) -> None:
    """Forgetting a buyer leaves no mention in any file of the home (tables, online store,
    load-test sample, reports), and the audit log says who asked."""
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
    # what serving-side work leaves in a home: a load-test sample and a report with examples
    sample = write_sample(settings, home / "loadtests" / "sample.json", size=10_000)
    assert victim in json.loads(sample.read_text())["customers"]
    example = [Recommendation("P1", 1.0, "you buy this on most visits")]
    write_report(home / "reports" / "training", "t", {}, recs={victim: example, "other": example})
    assert mentions(home / "reports" / "training" / "index.html", victim)

    result = runner.invoke(
        app,
        # --home after the command, as the README promises
        ["privacy", "forget", "--customer-id", victim, "--actor", "dpo", "--home", str(home)],
    )
    assert result.exit_code == 0, result.output

    files = [p for p in home.rglob("*") if p.is_file() and p != settings.audit_log]
    assert len(files) >= 20
    leftovers = [hit for path in files for hit in mentions(path, victim)]
    assert not leftovers, leftovers
    assert "other" in (home / "reports" / "training" / "index.html").read_text()
    assert json.loads(sample.read_text())["customers"]
    online = FeatureRepo(settings).online(RECS_SERVICE, [{"customer_id": victim}])
    assert online["top_items"] == [None] and online["opted_out_sale"] == [None]
    audit = [json.loads(line) for line in settings.audit_log.read_text().splitlines()]
    assert audit[-1]["customer_id"] == victim and audit[-1]["actor"] == "dpo"
    assert audit[-1]["removed"]["clean/transactions.parquet"] > 0
    assert audit[-1]["removed"]["online_store"] >= 1
