"""The console in a real browser: pages, rules preview and apply, roles, and consent."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from shelfops.data.consent import personalizable_customers
from shelfops.serving.rules_store import RulesStore
from tests.browser.conftest import EDITOR, VIEWER, Live

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = ("insights", "explorer", "rules", "forecasts", "operations", "share")


@contextmanager
def signed_in(browser: Any, live: Live, token: str, name: str) -> Iterator[tuple[Any, list[str]]]:
    """A fresh browser context signed in with ``token``; yields the page and its console errors."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{live.console_url}/insights")
        assert "/login" in page.url
        page.fill("input[name=name]", name)
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live.console_url}/insights")
        yield page, errors
    finally:
        context.close()


def recommend(live: Live, customer: str) -> list[str]:
    """What the running recommendation service returns for ``customer`` now."""
    reply = httpx.post(f"{live.recs_url}/recommend", json={"customer_id": customer, "k": 10})
    reply.raise_for_status()
    return [i["stock_code"] for i in reply.json()["items"]]


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Poll ``condition`` until it holds (the service reloads its rules within a second)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the recommendation service did not pick up the rules"
        time.sleep(0.2)


def personal_customer(live: Live) -> str:
    """A customer with history who allows personalization."""
    clean = live.home.clean_dir
    allowed = personalizable_customers(pd.read_parquet(clean / "customers.parquet"))
    tx = pd.read_parquet(clean / "transactions.parquet", columns=["customer_id"])
    ids = tx["customer_id"].dropna().astype(str)
    return str(ids[ids.isin(allowed)].value_counts().index[0])


def test_every_page_loads_without_console_errors(browser: Any, live: Live, artifacts: Path) -> None:
    """Each page answers 200 with its heading, logs no browser error, and is screenshotted."""
    with signed_in(browser, live, EDITOR, "page-check") as (page, errors):
        for name in PAGES:
            answer = page.goto(f"{live.console_url}/{name}")
            assert answer is not None and answer.status == 200, name
            assert page.locator("h1").first.is_visible()
            page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        customer = personal_customer(live)
        page.goto(f"{live.console_url}/explorer?customer_id={customer}")
        assert page.locator("#items tr").count() > 1
        main = page.locator("#items").inner_text()
        page.screenshot(path=str(artifacts / "explorer-customer.png"), full_page=True)
        # the discover list, chosen in the form: another list, asked of the same service
        page.select_option("#shelf", "discover")
        page.click("button[type=submit]")
        page.wait_for_url("**shelf=discover**")
        assert "discover list" in page.locator("#list-heading").inner_text()
        assert page.locator("#items tr").count() > 1
        assert page.locator("#items").inner_text() != main
        page.screenshot(path=str(artifacts / "explorer-discover.png"), full_page=True)
        assert errors == []


def test_the_weekly_summary_downloads_as_html_and_pdf(
    browser: Any, live: Live, artifacts: Path
) -> None:
    """One click gives a self-contained HTML summary; the other a PDF printed by Chromium."""
    with signed_in(browser, live, VIEWER, "share-check") as (page, errors):
        page.goto(f"{live.console_url}/share")
        with page.expect_download() as html_download:
            page.click("#weekly-html")
        html_path = artifacts / "weekly-summary.html"
        html_download.value.save_as(html_path)
        text = html_path.read_text()
        assert "Model value against baselines" in text and "<script" not in text
        with page.expect_download(timeout=90_000) as pdf_download:
            page.click("#weekly-pdf")
        pdf_path = artifacts / "weekly-summary.pdf"
        pdf_download.value.save_as(pdf_path)
        assert pdf_path.read_bytes().startswith(b"%PDF")
        assert errors == []


def test_rule_edit_previews_then_apply_changes_the_running_service(
    browser: Any, live: Live, artifacts: Path
) -> None:
    """A min_inventory above every item's stock previews removals, then empties served lists."""
    customer = personal_customer(live)
    before = recommend(live, customer)
    assert before, "the service should recommend something with the shipped rules"
    catalog = pd.read_parquet(live.home.features_dir / "product_catalog.parquet")
    too_high = str(int(catalog["inventory_on_hand"].max()) + 1)
    store = RulesStore(live.home)
    with signed_in(browser, live, EDITOR, "bea") as (page, errors):
        page.goto(f"{live.console_url}/rules")
        page.fill("#f-min_inventory", too_high)
        page.fill("input[name=note]", "browser test: hide everything")
        page.click("#preview")
        preview = page.locator("#preview-result")
        assert preview.is_visible()
        assert "min_inventory" in page.locator("#preview-rules").inner_text()
        page.screenshot(path=str(artifacts / "rules-preview.png"), full_page=True)
        assert store.versions() == [], "a preview must not apply anything"
        page.click("#apply")
        page.wait_for_url("**/rules?applied=*")
        assert "bea (editor)" in page.locator("#audit").inner_text()
        wait_for(lambda: recommend(live, customer) == [])
        page.goto(f"{live.console_url}/explorer?customer_id={customer}")
        assert "min_inventory" in page.locator("#removed").inner_text()
        # Back to normal by a new version, then roll back to v1 and to v2 through the page.
        page.goto(f"{live.console_url}/rules")
        page.fill("#f-min_inventory", "1")
        page.fill("input[name=note]", "browser test: back to normal")
        page.click("#apply")
        page.wait_for_url("**/rules?applied=*")
        wait_for(lambda: recommend(live, customer) == before)
        page.click("#rollback-1")
        page.wait_for_url("**/rules?applied=*")
        wait_for(lambda: recommend(live, customer) == [])
        page.click("#rollback-2")
        page.wait_for_url("**/rules?applied=*")
        wait_for(lambda: recommend(live, customer) == before)
        actions = [(a["action"], a["version"], a["rollback_of"]) for a in store.audit()]
        assert actions[:2] == [("rollback", 4, 2), ("rollback", 3, 1)]
        assert errors == []


def test_a_hand_edited_invalid_rules_file_is_reported_and_the_service_keeps_serving(
    browser: Any, live: Live
) -> None:
    """Breaking the file by hand: the page says so, and the service keeps its last valid rules."""
    customer = personal_customer(live)
    store = RulesStore(live.home)
    with signed_in(browser, live, EDITOR, "cy") as (page, _):
        page.goto(f"{live.console_url}/rules")
        page.fill("#f-surplus_boost", "0.5")
        page.click("#apply")
        page.wait_for_url("**/rules?applied=*")
        time.sleep(1.5)
        served = recommend(live, customer)
        good = store.current_path.read_text()
        store.current_path.write_text("min_inventory: lots\n")
        try:
            time.sleep(1.5)
            assert recommend(live, customer) == served
            page.goto(f"{live.console_url}/rules")
            assert "invalid" in page.locator("#rules-invalid").inner_text()
        finally:
            store.current_path.write_text(good)


def test_a_viewer_cannot_change_anything(browser: Any, live: Live, artifacts: Path) -> None:
    """A viewer sees disabled inputs and no buttons, and a forged POST is refused unchanged."""
    store = RulesStore(live.home)
    versions = len(store.versions())
    with signed_in(browser, live, VIEWER, "vic") as (page, errors):
        page.goto(f"{live.console_url}/rules")
        assert page.locator("#f-min_inventory").is_disabled()
        assert page.locator("#apply").count() == 0 and page.locator("#viewer-note").is_visible()
        page.screenshot(path=str(artifacts / "rules-viewer.png"), full_page=True)
        csrf = page.locator("input[name=csrf]").first.input_value()
        for action in ("apply", "preview", "rollback"):
            answer = page.request.post(
                f"{live.console_url}/rules/{action}",
                form={"csrf": csrf, "min_inventory": "3", "version": "1"},
            )
            assert answer.status == 403, action
        assert len(store.versions()) == versions
        assert errors == []


def test_an_opted_out_customers_history_never_appears(browser: Any, live: Live) -> None:
    """For a customer opted out of personalization: consent note, no history, non-personal list."""
    clean = live.home.clean_dir
    customers = pd.read_parquet(clean / "customers.parquet")
    out = set(customers["customer_id"].astype(str)) - personalizable_customers(customers)
    tx = pd.read_parquet(clean / "transactions.parquet")
    tx = tx[tx["customer_id"].astype(str).isin(out)]
    assert not tx.empty, "the generated retailer should have opted-out buyers"
    customer = str(tx["customer_id"].astype(str).value_counts().index[0])
    invoices = set(tx.loc[tx["customer_id"].astype(str) == customer, "invoice"].astype(str))
    with signed_in(browser, live, EDITOR, "dee") as (page, errors):
        page.goto(f"{live.console_url}/explorer?customer_id={customer}")
        assert page.locator("#consent-note").is_visible()
        assert page.locator("#history").count() == 0
        text = page.content()
        assert "Purchase history" not in text
        assert not any(inv in text for inv in invoices)
        sources = {s.strip() for s in page.locator("#items td:nth-child(4)").all_inner_texts()}
        assert sources and "personal" not in sources
        assert errors == []


def test_bad_input_gets_a_message_and_changes_nothing(browser: Any, live: Live) -> None:
    """A non-numeric rule value is named on the page; no version is written."""
    store = RulesStore(live.home)
    versions = len(store.versions())
    with signed_in(browser, live, EDITOR, "eve") as (page, _):
        page.goto(f"{live.console_url}/rules")
        page.fill("#f-max_markdown_count", "many")
        page.click("#apply")
        assert "not a whole number" in page.locator("#error-max_markdown_count").inner_text()
        assert page.locator("#form-errors").is_visible()
        page.goto(f"{live.console_url}/explorer?customer_id=x&k=zero")
        assert "k must be a whole number" in page.locator("#form-error").inner_text()
    assert len(store.versions()) == versions
