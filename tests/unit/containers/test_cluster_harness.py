"""The pure parts of the cluster stack harness (`make cluster-e2e`): no engine needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfops.containers.e2e import Run, Stage, token_pattern
from shelfops.containers.stack import StackPaths, rollout_config

pytestmark = pytest.mark.unit


def test_customer_token_matches_the_id_and_not_longer_numbers() -> None:
    """The forget sweep finds the id as a token, never inside another number or a decimal."""
    pattern = token_pattern("12346")
    assert pattern.search(b"invoice,12346,GB")
    assert pattern.search(b'{"customer_id": "12346"}')
    assert pattern.search(b"\x0a\x0512346\x12")  # a Feast entity key's string value
    for other in (b"123460", b"112346", b"0.12346", b"1234"):
        assert not pattern.search(other), other


def test_run_is_ok_only_when_every_stage_passed() -> None:
    """A run with a failed, unrun or no stage is not ok (the target exits non-zero)."""
    assert not Run().ok
    assert Run([Stage("a", status="ok"), Stage("b", status="ok")]).ok
    assert not Run([Stage("a", status="ok"), Stage("b", status="FAILED")]).ok
    assert not Run([Stage("a", status="ok"), Stage("b")]).ok


def test_stack_engine_uses_the_recorded_splitter_ports(tmp_path: Path) -> None:
    """The e2e engine adopts the splitters cluster-up started; overrides apply per phase."""
    record = {"ports": {"recs": 41001, "demand": 41002}}
    config = rollout_config(record, ready_timeout_s=90)
    assert (config.recs_port, config.demand_port) == (41001, 41002)
    assert config.ready_timeout_s == 90 and config.steps == [50, 100]
    paths = StackPaths(root=tmp_path, name="shelfops-x")
    assert paths.state == tmp_path / ".build" / "cluster" / "shelfops-x"
    assert paths.password_file.parent == paths.state
