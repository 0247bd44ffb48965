"""What an (ε, δ) guarantee allows, beside what the attacks measured.

A DP-SGD run with guarantee (ε, δ) limits every membership test, whatever
its threshold: ``TPR ≤ e^ε·FPR + δ`` (Kairouz, Oh & Viswanath 2015), and so
its precision at prior π: ``PPV ≤ π·min(1, e^ε·FPR + δ) / (π·min(1, e^ε·FPR
+ δ) + (1 − π)·FPR)``. For a DP trial privtune reports these bounds at each
resolvable operating point's *realized* FPR (the realistic view) and at the
oracle's FPRs at prior 0.5 (the worst-case view), next to the measured
figures. A measured TPR above its bound is sampling noise at these sample
sizes, or a sign that the ε reported does not describe the model attacked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from objectives.realistic import OperatingPoint
from objectives.stats import dp_ppv_bound, dp_tpr_bound


@dataclass(frozen=True)
class DPBound:
    """One operating point: measured TPR/PPV and the (ε, δ) limit at its FPR."""

    attack: str
    target_fpr: float
    fpr: float
    tpr: float
    tpr_bound: float
    ppv: float
    ppv_bound: float

    @property
    def within(self) -> bool:
        """Whether the measured TPR respects the bound."""
        return self.tpr <= self.tpr_bound

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v if isinstance(v, str) else float(v) for k, v in asdict(self).items()},
                "within": self.within}


@dataclass(frozen=True)
class DPBounds:
    """The (ε, δ) limits of one DP evaluation, realistic and oracle.

    Example:
        >>> b = dp_bounds(points=[], oracle_tpr={0.01: 0.05}, epsilon=1.0, delta=1e-5, prior=0.01)
        >>> round(b.oracle[0].tpr_bound, 6), round(b.oracle[0].ppv_bound, 4)  # prior 0.5
        (0.027193, 0.7311)
    """

    epsilon: float
    delta: float
    prior: float
    realistic: tuple[DPBound, ...]
    oracle: tuple[DPBound, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": float(self.epsilon),
            "delta": float(self.delta),
            "prior": float(self.prior),
            "realistic": [b.to_dict() for b in self.realistic],
            "oracle": [b.to_dict() for b in self.oracle],
        }


def dp_bounds(
    *,
    points: Sequence[OperatingPoint],
    oracle_tpr: Mapping[float, float],
    epsilon: float,
    delta: float,
    prior: float,
) -> DPBounds:
    """The (ε, δ) limits beside the measured figures.

    Args:
        points: the realistic operating points; only resolvable ones are kept.
        oracle_tpr: oracle ``FPR -> TPR`` of the worst-case view (judged at
            prior 0.5).
        epsilon, delta: the run's guarantee.
        prior: π of the realistic view.
    """
    realistic = tuple(
        DPBound(
            attack=p.attack,
            target_fpr=p.target_fpr,
            fpr=p.fpr,
            tpr=p.tpr,
            tpr_bound=dp_tpr_bound(epsilon=epsilon, delta=delta, fpr=p.fpr),
            ppv=p.ppv,
            ppv_bound=dp_ppv_bound(epsilon=epsilon, delta=delta, fpr=p.fpr, prior=prior),
        )
        for p in points
        if p.resolvable
    )
    oracle = tuple(
        DPBound(
            attack="oracle",
            target_fpr=float(fpr),
            fpr=float(fpr),
            tpr=float(tpr),
            tpr_bound=dp_tpr_bound(epsilon=epsilon, delta=delta, fpr=float(fpr)),
            ppv=_ppv_half(tpr=float(tpr), fpr=float(fpr)),
            ppv_bound=dp_ppv_bound(epsilon=epsilon, delta=delta, fpr=float(fpr), prior=0.5),
        )
        for fpr, tpr in sorted(oracle_tpr.items())
    )
    return DPBounds(epsilon=epsilon, delta=delta, prior=prior, realistic=realistic, oracle=oracle)


def _ppv_half(*, tpr: float, fpr: float) -> float:
    return 0.0 if tpr + fpr <= 0 else tpr / (tpr + fpr)
