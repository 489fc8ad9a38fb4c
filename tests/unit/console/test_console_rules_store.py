"""The rules store: versions, audit, rollback, and hand edits that break the rules file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfops.console.rules_page import form_values, parse_form
from shelfops.serving.rules import MerchRules
from shelfops.serving.rules_store import (
    SHIPPED_RULES,
    RulesStore,
    serving_rules_path,
)
from shelfops.settings import ServingSettings, Settings

pytestmark = pytest.mark.unit


@pytest.fixture()
def store(tmp_path: Path) -> RulesStore:
    return RulesStore(Settings(home=tmp_path / "home"))


def test_apply_writes_a_version_the_file_in_force_and_an_audit_line(store: RulesStore) -> None:
    """Applying saves v0001, puts it in force, and records who, when, what changed and why."""
    before = MerchRules()
    after = before.model_copy(update={"min_inventory": 5})
    v = store.apply(after, "ana (editor)", "stock is thin", base=before)
    assert v.number == 1 and v.rules() == after
    assert MerchRules.from_yaml(store.current_path) == after
    (entry,) = store.audit()
    assert entry["actor"] == "ana (editor)" and entry["action"] == "apply"
    assert entry["changes"] == {"min_inventory": [1, 5]} and entry["note"] == "stock is thin"
    assert entry["at"].endswith("+00:00")


def test_rollback_is_a_new_version_with_the_old_rules(store: RulesStore) -> None:
    """Rolling back to v1 writes v3 equal to v1; history only grows and the audit says so."""
    a = MerchRules(min_inventory=2)
    b = MerchRules(min_inventory=9)
    store.apply(a, "x", base=None)
    store.apply(b, "x", base=a)
    v3 = store.rollback(1, "y", "bad idea", base=b)
    assert v3.number == 3 and v3.rules() == a
    assert [v.number for v in store.versions()] == [1, 2, 3]
    newest = store.audit()[0]
    assert newest["action"] == "rollback" and newest["rollback_of"] == 1
    assert newest["changes"] == {"min_inventory": [9, 2]}
    with pytest.raises(KeyError, match="no rules version 7"):
        store.rollback(7, "y", base=a)


def test_status_reports_a_hand_edit_that_breaks_the_file(store: RulesStore) -> None:
    """An invalid hand edit is reported with the offending setting; a valid one as not matching."""
    store.apply(MerchRules(), "x", base=None)
    assert store.status().valid and store.status().matches_latest
    store.current_path.write_text("min_inventory: -3\n")
    status = store.status()
    assert not status.valid and "min_inventory" in (status.error or "")
    store.current_path.write_text("min_inventory: 4\n")
    status = store.status()
    assert status.valid and not status.matches_latest


def test_the_service_reads_the_home_rules_once_applied(tmp_path: Path) -> None:
    """Shipped rules until a version is applied; an explicit file or inline YAML wins."""
    settings = Settings(home=tmp_path / "home")
    assert serving_rules_path(settings, ServingSettings()) == SHIPPED_RULES
    RulesStore(settings).apply(MerchRules(), "x", base=None)
    assert serving_rules_path(settings, ServingSettings()) == RulesStore(settings).current_path
    own = tmp_path / "mine.yaml"
    assert serving_rules_path(settings, ServingSettings(rules_file=own)) == own
    assert serving_rules_path(settings, ServingSettings(rules_yaml="min_inventory: 2")) is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_inventory", "", "required"),
        ("min_inventory", "two", "not a whole number"),
        ("min_inventory", "-1", "greater than or equal to 0"),
        ("markdown_min_affinity", "1.5", "less than or equal to 1"),
    ],
)
def test_bad_form_values_get_a_message_per_field(field: str, value: str, message: str) -> None:
    """Each bad value is named with a reason, and no rules object comes out."""
    form = form_values(MerchRules())
    form[field] = value
    rules, errors = parse_form(form)
    assert rules is None and message in errors[field]


def test_audit_skips_a_torn_line(store: RulesStore) -> None:
    """A line cut short by a crash does not hide the entries around it."""
    store.apply(MerchRules(), "x", base=None)
    with store.audit_path.open("a") as fh:
        fh.write('{"at": "2026-')
    store.apply(MerchRules(min_inventory=3), "y", base=MerchRules())
    assert [e["actor"] for e in store.audit()] == ["y", "x"]
    assert json.loads(store.audit_path.read_text().splitlines()[0])["version"] == 1


def test_category_pairs_lift_and_conditional_share_on_a_tiny_basket_set() -> None:
    """Lift and P(B | A) per ordered pair match a hand count; the unordered top list keeps one."""
    import pandas as pd

    from shelfops.reports.html import category_affinity, category_pairs

    tx = pd.DataFrame(
        {
            "invoice": ["1", "1", "2", "2", "3", "4"] * 5,
            "stock_code": ["a", "b", "a", "b", "a", "c"] * 5,
        }
    )
    tx["invoice"] = tx["invoice"] + "-" + (tx.index // 6).astype(str)
    products = pd.DataFrame(
        {"stock_code": ["a", "b", "c"], "category": ["X", "Y", "Z"], "description": ["", "", ""]}
    )
    pairs = category_pairs(tx, products).set_index(["category_a", "category_b"])
    # 20 baskets: X in 15, Y in 10, X and Y together in 10.
    assert pairs.loc[("Y", "X"), "p_b_given_a"] == pytest.approx(1.0)
    assert pairs.loc[("X", "Y"), "p_b_given_a"] == pytest.approx(10 / 15)
    assert pairs.loc[("X", "Y"), "lift"] == pytest.approx((10 / 15) / (10 / 20))
    top = category_affinity(tx, products)
    assert top[["category_a", "category_b"]].values.tolist() == [["X", "Y"]]


def test_served_recall_reads_the_newest_served_backtest(tmp_path: Path) -> None:
    """The preview quotes served (and offline) Recall@10 from `backtest --served` output."""
    from shelfops.console.home import HomeData
    from shelfops.console.rules_page import served_recall

    settings = Settings(home=tmp_path / "home")
    reports = settings.root / "backtests" / "tx-2026-06-01" / "reports"
    reports.mkdir(parents=True)
    result = {
        "cutoff": "2026-06-01",
        "recommendations": {
            "served": {"served": {"recall@10": 0.1234}, "offline": {"recall@10": 0.1301}}
        },
    }
    (reports / "backtest.json").write_text(json.dumps(result))
    said = served_recall(HomeData(settings))
    assert "0.1234" in said and "0.1301" in said and "2026-06-01" in said
