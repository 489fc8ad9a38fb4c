"""The served-recall condition of the model gate: threshold, message, the operator's flag."""

from __future__ import annotations

from typing import Any

import pytest

from shelfops.evaluation.served import gate_checks, served_gate_check
from shelfops.training.gate import gate_task

pytestmark = pytest.mark.unit


def served(offline: float, served_recall: float) -> dict[str, Any]:
    gap = (offline - served_recall) / offline
    return {
        "served": {"recall@10": served_recall},
        "offline": {"recall@10": offline},
        "recall_gap": gap,
        "rules": {"discount_affinity": {"removed": 1234, "emptied": 56}},
    }


PER_ORIGIN = {
    "2026-01-05": {"model": {"recall@10": 0.30}, "personal_frequency": {"recall@10": 0.25}}
}


def test_a_gap_within_five_percent_passes() -> None:
    """Served 4.9% below offline passes; the gate registers the model."""
    check = served_gate_check(served(0.300, 0.2853))
    assert check.passed
    assert gate_task("recs", PER_ORIGIN, 0.05, checks=[check]).passed


def test_a_larger_gap_fails_the_gate_with_a_message_that_says_what_to_do() -> None:
    """Served 10% below offline rejects the model and names the rule and the flag."""
    result = gate_task("recs", PER_ORIGIN, 0.05, checks=gate_checks({"served": served(0.3, 0.27)}))
    assert not result.passed
    (reason,) = result.reasons
    assert "served_recall" in reason and "+10.0% below offline" in reason
    assert "discount_affinity removed 1,234" in reason and "--accept-served-gap" in reason


def test_the_operator_can_accept_the_gap_explicitly() -> None:
    """With the accept flag the same gap passes and says it was accepted."""
    (check,) = gate_checks({"served": served(0.3, 0.27)}, accepted=True)
    assert check.passed and "accepted by the operator" in check.detail


def test_no_replay_means_no_served_condition() -> None:
    """A model trained without the replay (demand, or served off) gets no served check."""
    assert gate_checks({"validation_cutoff": "2026-01-05"}) == []
