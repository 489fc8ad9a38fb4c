"""Console access: tokens, roles, CSRF and loopback binding, checked through real HTTP requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from shelfops.console.app import create_app
from shelfops.console.auth import ConsoleAccessError, check_bind
from shelfops.console.rules_page import form_values
from shelfops.serving.rules import MerchRules
from shelfops.serving.rules_store import RulesStore
from shelfops.settings import ConsoleSettings, Settings

pytestmark = pytest.mark.unit

VIEWER = "viewer-token-0123456789"
EDITOR = "editor-token-0123456789"


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def client(settings: Settings, tokens: bool = True) -> TestClient:
    config = ConsoleSettings(
        viewer_token=SecretStr(VIEWER) if tokens else None,
        editor_token=SecretStr(EDITOR) if tokens else None,
        recs_url="http://127.0.0.1:9",
    )
    return TestClient(create_app(settings, config), follow_redirects=False)


def sign_in(c: TestClient, token: str, name: str = "ana") -> str:
    form = c.get("/login").text
    nonce = re.search(r'name="nonce" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    done = c.post("/login", data={"nonce": nonce, "token": token, "name": name, "next": "/rules"})
    assert done.status_code == 303 and done.headers["location"] == "/rules"
    page = c.get("/rules").text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def rules_form(csrf: str, **changes: str) -> dict[str, str]:
    form = form_values(MerchRules())
    return {**form, "csrf": csrf, "note": "test", **changes}


@pytest.mark.parametrize(
    ("host", "tokens", "ok"),
    [
        ("127.0.0.1", (None, None), True),
        ("::1", (None, None), True),
        ("0.0.0.0", (None, None), False),
        ("0.0.0.0", (None, EDITOR), False),
        ("0.0.0.0", (VIEWER, EDITOR), True),
        ("0.0.0.0", (EDITOR, EDITOR), False),
        ("0.0.0.0", (VIEWER, "short"), False),
    ],
)
def test_refuses_to_serve_beyond_loopback_without_both_tokens(
    host: str, tokens: tuple[str | None, str | None], ok: bool
) -> None:
    """Loopback may run without tokens; any other address needs two distinct, long tokens."""
    viewer, editor = (SecretStr(t) if t else None for t in tokens)
    if ok:
        check_bind(host, viewer, editor)
    else:
        with pytest.raises(ConsoleAccessError):
            check_bind(host, viewer, editor)


def test_pages_need_a_token_and_a_wrong_token_gets_nothing(settings: Settings) -> None:
    """Without a session every page redirects to sign-in; a wrong token starts no session."""
    c = client(settings)
    assert c.get("/rules").status_code == 303
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
    wrong = c.post("/login", data={"nonce": nonce, "token": "guess-guess-guess"})
    assert wrong.headers["location"] == "/login?error=token"
    assert c.get("/rules").status_code == 303
    assert c.post("/rules/apply", data={"min_inventory": "3"}).status_code == 401


def test_a_viewer_cannot_change_rules(settings: Settings) -> None:
    """A viewer's apply is refused with 403 and nothing is written."""
    c = client(settings)
    csrf = sign_in(c, VIEWER)
    answer = c.post("/rules/apply", data=rules_form(csrf, min_inventory="7"))
    assert answer.status_code == 403 and "viewers cannot change anything" in answer.text
    assert RulesStore(settings).versions() == [] and RulesStore(settings).audit() == []


def test_a_change_without_the_csrf_token_is_refused(settings: Settings) -> None:
    """An editor's form without (or with another) CSRF token changes nothing."""
    c = client(settings)
    sign_in(c, EDITOR)
    for token in ("", "forged"):
        answer = c.post("/rules/apply", data=rules_form(token, min_inventory="7"))
        assert answer.status_code == 403 and "security token" in answer.text
    assert RulesStore(settings).versions() == []


def test_bad_input_gets_a_message_and_changes_nothing(settings: Settings) -> None:
    """A negative inventory is a 400 naming the field; no version, no audit line."""
    c = client(settings)
    csrf = sign_in(c, EDITOR)
    answer = c.post("/rules/apply", data=rules_form(csrf, min_inventory="-4"))
    assert answer.status_code == 400
    assert "greater than or equal to 0" in answer.text and "Nothing was changed" in answer.text
    assert RulesStore(settings).versions() == []
    bad = c.post("/rules/rollback", data={"csrf": csrf, "version": "12"})
    assert bad.status_code == 400 and "no rules version 12" in bad.text


def test_an_editor_change_is_versioned_and_audited_with_their_name(settings: Settings) -> None:
    """Apply by an editor writes v0001 with the signed-in name and role as the actor."""
    c = client(settings)
    csrf = sign_in(c, EDITOR, name="bea")
    answer = c.post("/rules/apply", data=rules_form(csrf, min_inventory="7"))
    assert answer.status_code == 303
    (entry,) = RulesStore(settings).audit()
    assert entry["actor"] == "bea (editor)" and entry["changes"] == {"min_inventory": [1, 7]}
    page = c.get("/rules")
    assert "bea (editor)" in page.text and page.headers["content-security-policy"].startswith(
        "default-src 'none'"
    )


def test_loopback_without_tokens_is_the_local_editor_with_csrf_still_required(
    settings: Settings,
) -> None:
    """No tokens: pages open directly, yet a change without the page's CSRF token is refused."""
    c = client(settings, tokens=False)
    page = c.get("/rules")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert c.post("/rules/apply", data=rules_form("nope")).status_code == 403
    assert c.post("/rules/apply", data=rules_form(csrf, min_inventory="2")).status_code == 303
    assert RulesStore(settings).versions()[0].rules().min_inventory == 2


def test_the_cli_refuses_a_public_address_without_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shelfops console --host 0.0.0.0` without tokens exits 1 and names the variables to set."""
    from typer.testing import CliRunner

    from shelfops.cli.main import app

    for var in ("SHELFOPS_CONSOLE_VIEWER_TOKEN", "SHELFOPS_CONSOLE_EDITOR_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "console", "--host", "0.0.0.0"])
    said = " ".join((result.stdout + (result.stderr or "")).split())
    assert result.exit_code == 1
    assert "SHELFOPS_CONSOLE_VIEWER_TOKEN and SHELFOPS_CONSOLE_EDITOR_TOKEN" in said
