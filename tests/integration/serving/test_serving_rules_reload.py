"""The recommendation server puts an edited rules file in force without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.serving.servers import load_server

from shelfops.serving.recs import RecsServer
from shelfops.serving.rules import MerchRules
from shelfops.serving.rules_store import RulesStore, rules_yaml
from shelfops.settings import ServingSettings, Settings

pytestmark = pytest.mark.integration


def test_edited_rules_reload_and_an_invalid_edit_keeps_the_last_valid_rules(
    trained_home: Settings, tmp_path: Path
) -> None:
    """A valid edit is in force after reload; a broken one is reported and changes nothing."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(MerchRules(min_inventory=1)))
    server = load_server("recs", trained_home, ServingSettings(rules_file=path, rules_reload_s=60))
    assert isinstance(server, RecsServer)
    try:
        assert server.reload_rules() is False  # unchanged
        path.write_text(rules_yaml(MerchRules(min_inventory=7)))
        assert server.reload_rules() is True and server.rules.min_inventory == 7
        path.write_text("min_inventory: [not, a, number]\n")
        assert server.reload_rules() is False
        assert server.rules.min_inventory == 7
        assert server.rules_error and "min_inventory" in server.rules_error
        path.write_text(rules_yaml(MerchRules(min_inventory=3)))
        assert server.reload_rules() is True and server.rules_error is None
        assert server.rules.min_inventory == 3
    finally:
        server.close()


def test_a_version_applied_in_the_home_is_picked_up(trained_home: Settings) -> None:
    """Without a configured file the server follows the home's rules store, from its first apply."""
    store = RulesStore(trained_home)
    server = load_server("recs", trained_home, ServingSettings(rules_reload_s=60))
    assert isinstance(server, RecsServer)
    try:
        assert server.rules == MerchRules.from_yaml(
            Path(__file__).parents[3] / "src/shelfops/serving/merchandising.yaml"
        )
        store.apply(MerchRules(min_inventory=4), "test", base=server.rules)
        assert server.reload_rules() is True and server.rules.min_inventory == 4
    finally:
        server.close()
        store.current_path.unlink(missing_ok=True)
        for v in store.versions():
            v.path.unlink()
        store.audit_path.unlink(missing_ok=True)
