"""The success gate: a model is registered only when it beats the best baseline, origin by origin.

Validation metrics come per origin: ``{origin: {"model": metrics, baseline: metrics, ...}}``.
The gate picks the baseline that is best on the mean over origins and accepts the model when

1. its mean improvement over that baseline is at least ``margin``, and
2. on no origin does it trail that baseline by more than ``tolerance`` (the floor per origin is
   ``min(margin, 0) - tolerance``, so a negative margin, which accepts a loss on the mean,
   loosens it too), and
3. every extra :class:`GateCheck` passed (other conditions, such as recall through the served
   path, are added this way rather than by a second gate).

Every failed condition becomes one reason in :attr:`GateResult.reasons`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: task -> (gated metric, lower is better)
GATED_METRIC: dict[str, tuple[str, bool]] = {
    "demand": ("wrmsse", True),
    "recs": ("recall@10", False),
}

#: Validation metrics: ``{origin: {"model" or baseline name: {metric: value}}}``.
PerOrigin = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class GateCheck:
    """An extra condition of the gate, decided elsewhere (e.g. recall through the served path)."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class OriginComparison:
    """Model against the gate's baseline on one origin."""

    origin: str
    model: float
    baseline: float
    improvement: float


@dataclass(frozen=True)
class GateResult:
    """Outcome of the success gate, with the figures and the reasons for a rejection."""

    passed: bool
    metric: str
    model: float  # mean over origins
    best_baseline: str
    baseline: float  # mean over origins
    improvement: float  # of the means
    margin: float
    tolerance: float = 0.02
    origins: tuple[OriginComparison, ...] = ()
    checks: tuple[GateCheck, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def message(self) -> str:
        """One human line with the numbers and, when rejected, every reason."""
        verdict = "accepted" if self.passed else "rejected"
        n = len(self.origins)
        text = (
            f"{verdict}: {self.metric} model {self.model:.4f} vs best baseline "
            f"{self.best_baseline} {self.baseline:.4f} (improvement {self.improvement:+.1%}, "
            f"required {self.margin:+.1%}"
        )
        if n > 1:
            worst = min(o.improvement for o in self.origins)
            text += f"; mean of {n} origins, worst origin {worst:+.1%}"
        text += ")"
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return {
            "passed": self.passed,
            "metric": self.metric,
            "model": self.model,
            "best_baseline": self.best_baseline,
            "baseline": self.baseline,
            "improvement": self.improvement,
            "margin": self.margin,
            "tolerance": self.tolerance,
            "origins": [o.__dict__ for o in self.origins],
            "checks": [c.__dict__ for c in self.checks],
            "reasons": list(self.reasons),
        }


def _improvement(model: float, base: float, lower_is_better: bool) -> float:
    if base == 0:
        return 0.0
    return (base - model) / abs(base) if lower_is_better else (model - base) / abs(base)


def success_gate(
    per_origin: PerOrigin,
    metric: str,
    lower_is_better: bool,
    margin: float,
    tolerance: float = 0.02,
    checks: Sequence[GateCheck] = (),
) -> GateResult:
    """Does the model beat the best baseline on the mean by ``margin``, trailing it nowhere?

    Args:
        per_origin: ``{origin: {"model": metrics, baseline: metrics, ...}}`` on validation.
        metric: The gated metric (``wrmsse`` or ``recall@10``).
        lower_is_better: True for errors.
        margin: Required relative improvement of the mean (0.05 = 5%).
        tolerance: Largest relative shortfall allowed on any single origin (0.02 = 2%).
        checks: Extra conditions that must all pass.

    Returns:
        The gate result.

    Raises:
        ValueError: Without origins or without a baseline scored on every origin.
    """
    if not per_origin:
        raise ValueError("the gate needs at least one validation origin")
    names = set.intersection(
        *[
            {k for k, v in scores.items() if k != "model" and v.get(metric) is not None}
            for scores in per_origin.values()
        ]
    )
    if not names:
        raise ValueError("the gate needs at least one baseline scored on every origin")
    origins = sorted(per_origin)
    model_by = {o: float(per_origin[o]["model"][metric]) for o in origins}
    means = {n: float(np.mean([float(per_origin[o][n][metric]) for o in origins])) for n in names}
    pick = min if lower_is_better else max
    best = pick(sorted(means), key=lambda n: means[n])
    model_mean = float(np.mean(list(model_by.values())))
    improvement = _improvement(model_mean, means[best], lower_is_better)
    comparisons = tuple(
        OriginComparison(
            origin=o,
            model=model_by[o],
            baseline=float(per_origin[o][best][metric]),
            improvement=_improvement(
                model_by[o], float(per_origin[o][best][metric]), lower_is_better
            ),
        )
        for o in origins
    )
    reasons: list[str] = []
    if not improvement >= margin:
        reasons.append(
            f"mean improvement {improvement:+.1%} over {best} is below the required {margin:+.1%}"
        )
    floor = min(margin, 0.0) - tolerance
    for c in comparisons:
        if c.improvement < floor:
            reasons.append(
                f"origin {c.origin}: trails {best} by {-c.improvement:.1%} (allowed {-floor:.1%})"
            )
    reasons += [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    return GateResult(
        passed=not reasons,
        metric=metric,
        model=model_mean,
        best_baseline=best,
        baseline=means[best],
        improvement=float(improvement),
        margin=margin,
        tolerance=tolerance,
        origins=comparisons,
        checks=tuple(checks),
        reasons=tuple(reasons),
    )


def gate_task(
    task: str,
    per_origin: PerOrigin,
    margin: float,
    tolerance: float = 0.02,
    checks: Sequence[GateCheck] = (),
) -> GateResult:
    """The success gate of one task on its validation origins.

    Args:
        task: ``demand`` or ``recs``.
        per_origin: ``{origin: {"model": metrics, baseline: metrics, ...}}``.
        margin: Required relative improvement of the mean over the best baseline.
        tolerance: Largest shortfall allowed on any origin.
        checks: Extra conditions.

    Returns:
        The :class:`GateResult`.
    """
    metric, lower_is_better = GATED_METRIC[task]
    return success_gate(per_origin, metric, lower_is_better, margin, tolerance, checks)
