"""Ingestion loses nothing: every row is accepted or quarantined with a reason, counts reconcile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import AS_OF, make_home

from shelfops.data.ingest import IngestError, QualityGateError, ingest
from shelfops.settings import QualityThresholds

pytestmark = pytest.mark.unit

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
GOOD = "536365,85123A,WHITE HANGING HEART,6,2026-11-01 08:26:00,2.55,17850.0,United States\n"


def _write(tmp_path: Path, body: str, name: str = "tx.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def _lenient() -> QualityThresholds:
    return QualityThresholds(
        max_quarantine_share=1.0,
        min_rows=1,
        min_customer_id_completeness=0.0,
        max_staleness_days=None,
    )


def test_generated_exports_reconcile_for_every_table(tmp_path: Path, small_exports) -> None:
    """On the generated exports read = accepted + quarantined for all three tables."""
    _, result = make_home(tmp_path, small_exports)
    for table in ("transactions", "customers", "products"):
        counts = result.report["tables"][table]
        assert counts["reconciled"]
        assert counts["rows_read"] == counts["rows_accepted"] + counts["rows_quarantined"]
    clean = pd.read_parquet(result.clean["transactions"])
    quarantine = pd.read_parquet(result.quarantine)
    raw_rows = sum(1 for _ in small_exports["transactions"].open()) - 1
    assert len(clean) + (quarantine["table"] == "transactions").sum() == raw_rows
    assert result.report["gate"]["passed"]


def test_corrupted_rows_land_in_quarantine_with_reasons(tmp_path: Path) -> None:
    """Each planted defect is quarantined with the right reason and its line number."""
    body = GOOD + "".join(
        [
            "536366,22752,SET 7 BABUSHKA,abc,2026-11-01 08:28:00,7.65,17850,United States\n",  # 3
            "536367,22752,SET 7 BABUSHKA,2,not a date,7.65,17850,United States\n",  # 4
            "536368,22752,SET 7 BABUSHKA,2,2026-11-01 08:28:00,-1,17850,United States\n",  # 5
            ",22752,SET 7 BABUSHKA,2,2026-11-01 08:28:00,7.65,17850,United States\n",  # 6
            "536369,22752,SET 7 BABUSHKA,0,2026-11-01 08:28:00,7.65,17850,United States\n",  # 7
            GOOD,  # 8: duplicate of line 2
            "C536370,22752,SET 7 BABUSHKA,3,2026-11-01 08:28:00,7.65,17850,United States\n",  # 9
            "536371,22752,SET 7 BABUSHKA,2,2030-01-01 08:28:00,7.65,17850,United States\n",  # 10
            "536372,22752,TOO,MANY,FIELDS,2,2026-11-01,7.65,1,United States\n",  # 11
            "536373,22752,SET 7 BABUSHKA,-2,2026-11-01 08:28:00,7.65,17850,United States\n",  # 12
            "536374,22752,,2,2026-11-01 08:28:00,0,17850,United States\n",  # 13
            "536375,POST,POSTAGE,1,2026-11-01 08:28:00,18,,United States\n",  # 14: accepted
        ]
    )
    result = ingest(_write(tmp_path, body), tmp_path / "home", thresholds=_lenient(), as_of=AS_OF)
    q = pd.read_parquet(result.quarantine).set_index("row")
    expected = {
        3: "quantity is not a number",
        4: "invoice_date is not a date",
        5: "negative unit_price",
        6: "missing invoice",
        7: "zero quantity",
        8: "duplicate line",
        9: "positive quantity on a cancellation",
        10: "invoice_date in the future",
        11: "malformed row",
        12: "negative quantity on a sale",
        13: "zero unit_price on a product line",
    }
    for row, reason in expected.items():
        assert reason in q.loc[row, "reason"], (row, q.loc[row, "reason"])
    counts = result.report["tables"]["transactions"]
    assert counts == {
        **counts,
        "rows_read": 13,
        "rows_accepted": 2,
        "rows_quarantined": 11,
        "reconciled": True,
    }
    clean = pd.read_parquet(result.clean["transactions"])
    assert clean["customer_id"].dropna().tolist() == ["17850"]
    assert result.report["non_product_lines"]["codes"] == {"POST": 1}


def test_alternative_header_spellings_and_xlsx(tmp_path: Path) -> None:
    """The Online Retail II spellings import from XLSX just as the classic CSV ones do."""
    frame = pd.DataFrame(
        {
            "Invoice": ["1", "2"],
            "StockCode": ["A1", "B2"],
            "Description": ["X", "Y"],
            "Quantity": [1, 2],
            "InvoiceDate": ["2026-11-01 10:00", "2026-11-02 11:00"],
            "Price": [1.5, 2.5],
            "Customer ID": [12345.0, None],
            "Country": ["United States", "Canada"],
        }
    )
    path = tmp_path / "export.xlsx"
    frame.to_excel(path, index=False)
    result = ingest(path, tmp_path / "home", thresholds=_lenient(), as_of=AS_OF)
    clean = pd.read_parquet(result.clean["transactions"])
    assert clean["unit_price"].tolist() == [1.5, 2.5]
    assert clean["customer_id"].tolist()[0] == "12345"
    assert pd.isna(clean["customer_id"].tolist()[1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (HEADER.encode(), "no data rows"),
        (
            HEADER.replace(",Quantity", "").encode() + b"1,A,x,2026-11-01,1,1,US\n",
            "missing required transactions columns ['quantity']",
        ),
        (
            HEADER.encode() + "1,A,CAF\u00c9 MUG,1,2026-11-01,1,1,US\n".encode("latin-1"),
            "--encoding latin-1",
        ),
        (HEADER.encode() + GOOD.encode() + b"536366,22752,SET 7 BAB", "truncated"),
    ],
)
def test_unreadable_files_fail_clearly_and_write_nothing(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Empty, header-only, column-less, mis-encoded and truncated files raise and write nothing."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    home = tmp_path / "home"
    with pytest.raises(IngestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ingest(path, home, thresholds=_lenient(), as_of=AS_OF)
    assert not home.exists() or not any(home.rglob("*.parquet"))


def test_latin1_export_imports_with_the_encoding_flag(tmp_path: Path) -> None:
    """The error's advice works: the same file imports with encoding latin-1."""
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + "1,A,CAF\u00c9 MUG,1,2026-11-01,1,1,US\n".encode("latin-1"))
    result = ingest(path, tmp_path / "home", thresholds=_lenient(), as_of=AS_OF, encoding="latin-1")
    clean = pd.read_parquet(result.clean["transactions"])
    assert clean["description"].tolist() == ["CAF\u00c9 MUG"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.parquet")}


def test_failed_gate_and_failed_read_leave_previous_clean_data_alone(
    tmp_path: Path, small_exports
) -> None:
    """A dirty or truncated re-import neither replaces nor half-writes the clean tables."""
    settings, _ = make_home(tmp_path, small_exports)
    before = _digest(settings.clean_dir)
    dirty = _write(tmp_path, GOOD + "x,y,z,abc,nope,-1,,\n" * 20)
    with pytest.raises(QualityGateError, match="quarantined") as err:
        ingest(dirty, settings.root, as_of=AS_OF)
    assert err.value.report["gate"]["passed"] is False
    assert (settings.reports_dir / "rejected_quarantine.parquet").exists()
    truncated = tmp_path / "cut.csv"
    truncated.write_bytes(small_exports["transactions"].read_bytes()[:5000])
    with pytest.raises(IngestError):
        ingest(truncated, settings.root, as_of=AS_OF)
    assert _digest(settings.clean_dir) == before
    assert not list(settings.root.glob(".staging-*"))


def test_stale_data_fails_the_gate_with_the_reason(tmp_path: Path) -> None:
    """Data whose newest event is older than the limit fails with the age in the message."""
    path = _write(tmp_path, GOOD)
    thresholds = _lenient().model_copy(update={"max_staleness_days": 5})
    with pytest.raises(QualityGateError, match="days old"):
        ingest(path, tmp_path / "home", thresholds=thresholds, as_of=AS_OF)


def test_promotions_are_validated_quarantined_and_reconciled(tmp_path: Path) -> None:
    """Planned promotions: bad weeks and counts go to quarantine with a reason; counts reconcile."""
    tx = _write(tmp_path, GOOD)
    promos = _write(
        tmp_path,
        "85123A,2026-10-26,3,0\n"  # 2: accepted
        "85123A,2026-10-27,1,1\n"  # 3: a Tuesday
        "85123A,2026-11-02,-1,0\n"  # 4: negative count
        ",2026-11-02,1,0\n"  # 5: no code
        "85123A,2026-10-26,5,5\n",  # 6: duplicate product and week
        name="promotions.csv",
        header="product_id,week,displays,mailers\n",
    )
    result = ingest(
        tx, tmp_path / "home", promotions_path=promos, thresholds=_lenient(), as_of=AS_OF
    )
    counts = result.report["tables"]["promotions"]
    assert (counts["rows_read"], counts["rows_accepted"], counts["rows_quarantined"]) == (5, 1, 4)
    assert counts["reconciled"]
    q = pd.read_parquet(result.quarantine)
    q = q[q["table"] == "promotions"].sort_values("row")
    assert q["reason"].tolist() == [
        "week_start is not a Monday",
        "negative display_stores",
        "missing stock_code",
        "duplicate stock_code and week_start",
    ]
    clean = pd.read_parquet(result.clean["promotions"])
    assert clean[["display_stores", "mailer_stores"]].to_numpy().tolist() == [[3, 0]]
    assert "Promotions: 5 read" in (tmp_path / "home" / "reports" / "data_quality.md").read_text()
