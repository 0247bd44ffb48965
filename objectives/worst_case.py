"""Worst-case membership-inference risk: the conventional, oracle view.

Reported beside the realistic risk and never mixed into it: prior 0.5,
thresholds chosen with knowledge of who the members are (the evaluation
sets themselves), and the usual summaries (AUC, TPR at a low FPR, the
balanced-accuracy advantage). It shows what a conventional audit would
conclude, and so what tuning against it would cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from objectives.realistic import AttackScores, attack_names
from objectives.stats import auc_interval, is_resolvable, nonmembers_needed


@dataclass(frozen=True)
class WorstCaseAttack:
    """One attack's oracle figures, pooled over runs.

    Args:
        attack: the attack's name.
        auc: area under the ROC curve (ties count ½).
        auc_interval: its 95 % interval (Hanley & McNeil 1982).
        tpr_at_fpr: oracle TPR at each requested FPR.
        advantage: ``max_t (TPR − FPR) = 2·balanced_accuracy − 1``.
        ppv_at_half: max over resolvable calibration α of
            ``TPR(α) / (TPR(α) + α)``: the PPV at prior 0.5 with an oracle
            threshold whose FPR is exactly α.
    """

    attack: str
    auc: float
    tpr_at_fpr: dict[float, float]
    advantage: float
    ppv_at_half: float
    auc_interval: tuple[float, float] = (0.0, 1.0)
    n_members: int = 0
    n_nonmembers: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``tpr_at_fpr`` keys are ``str(α)``."""
        return {
            "attack": self.attack,
            "auc": float(self.auc),
            "auc_interval": [float(v) for v in self.auc_interval],
            "tpr_at_fpr": _str_keys(self.tpr_at_fpr),
            "advantage": float(self.advantage),
            "ppv_at_half": float(self.ppv_at_half),
            "n_members": int(self.n_members),
            "n_nonmembers": int(self.n_nonmembers),
        }


@dataclass(frozen=True)
class WorstCaseRisk:
    """Worst case over attacks; ``risk`` is judged against the same ``max_ppv``.

    Example:
        >>> same = AttackScores(members=np.zeros(100), nonmembers=np.zeros(100),
        ...                     calibration=np.zeros(10))
        >>> worst = worst_case_risk([{"loss": same}], calibration_fprs=[0.1], max_ppv=0.5)
        >>> worst.auc, round(worst.risk, 9), worst.adequate  # a coin flip at prior ½
        (0.5, 0.5, True)
    """

    attacks: tuple[WorstCaseAttack, ...]
    auc: float
    tpr_at_fpr: dict[float, float]
    advantage: float
    risk: float
    max_ppv: float
    adequate: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``tpr_at_fpr`` keys are ``str(α)``."""
        return {
            "attacks": [a.to_dict() for a in self.attacks],
            "auc": float(self.auc),
            "tpr_at_fpr": _str_keys(self.tpr_at_fpr),
            "advantage": float(self.advantage),
            "risk": float(self.risk),
            "max_ppv": float(self.max_ppv),
            "adequate": bool(self.adequate),
        }


def worst_case_risk(
    runs: Sequence[Mapping[str, AttackScores]],
    *,
    fprs: Sequence[float] = (0.001, 0.01),
    calibration_fprs: Sequence[float],
    max_ppv: float,
    min_expected_false_positives: float = 10.0,
) -> WorstCaseRisk:
    """Oracle figures of every attack, runs pooled by concatenating their scores.

    Args:
        runs: one mapping ``attack name -> AttackScores`` per trained target.
        fprs: FPRs at which to report the oracle TPR.
        calibration_fprs: the α grid of the realistic view; ``ppv_at_half``
            uses the resolvable ones, so both views look at the same rates.
        max_ppv: adequacy bound on the PPV at prior 0.5.
        min_expected_false_positives: resolvability, as in the realistic view.

    Raises:
        ValueError: when runs disagree on attacks or no α is resolvable.
    """
    names = attack_names(runs)
    n_nonmembers = sum(run[names[0]].nonmembers.size for run in runs)
    resolvable = [
        float(a)
        for a in calibration_fprs
        if is_resolvable(
            n_nonmembers=n_nonmembers,
            alpha=a,
            min_expected_false_positives=min_expected_false_positives,
        )
    ]
    if not resolvable:
        needed = [
            nonmembers_needed(alpha=a, min_expected_false_positives=min_expected_false_positives)
            for a in calibration_fprs
        ]
        wants = ", ".join(
            f"alpha={a} needs {n}" for a, n in zip(calibration_fprs, needed, strict=True)
        )
        raise ValueError(
            f"no calibration FPR is resolvable with {n_nonmembers} evaluation non-members: {wants}"
        )
    attacks = [
        oracle_attack(
            name,
            members=np.concatenate([run[name].members for run in runs]),
            nonmembers=np.concatenate([run[name].nonmembers for run in runs]),
            fprs=fprs,
            resolvable_fprs=resolvable,
        )
        for name in names
    ]
    risk = max(a.ppv_at_half for a in attacks)
    return WorstCaseRisk(
        attacks=tuple(attacks),
        auc=max(a.auc for a in attacks),
        tpr_at_fpr={float(f): max(a.tpr_at_fpr[float(f)] for a in attacks) for f in fprs},
        advantage=max(a.advantage for a in attacks),
        risk=risk,
        max_ppv=max_ppv,
        adequate=risk <= max_ppv,
    )


def oracle_attack(
    name: str,
    *,
    members: np.ndarray,
    nonmembers: np.ndarray,
    fprs: Sequence[float],
    resolvable_fprs: Sequence[float],
) -> WorstCaseAttack:
    """One attack's oracle figures from its member and non-member scores.

    Args:
        name: the attack's name.
        members, nonmembers: scores (higher = more likely member).
        fprs: FPRs at which to report the oracle TPR.
        resolvable_fprs: non-empty; ``ppv_at_half`` is the largest
            ``TPR/(TPR + FPR)`` over every oracle threshold whose FPR is at
            least the smallest of them (rarer claims cannot be observed), so
            it bounds from above every realistic operating point at such FPRs.
    """
    if len(resolvable_fprs) == 0:
        raise ValueError("oracle_attack needs at least one resolvable FPR for ppv_at_half")
    members = np.asarray(members, dtype=np.float64)
    nonmembers = np.asarray(nonmembers, dtype=np.float64)
    fpr, tpr = roc_points(members, nonmembers)
    auc = roc_auc(members, nonmembers)
    return WorstCaseAttack(
        attack=name,
        auc=auc,
        tpr_at_fpr={float(a): tpr_at(fpr=fpr, tpr=tpr, alpha=float(a)) for a in fprs},
        advantage=float(np.max(tpr - fpr)),
        ppv_at_half=_best_ppv_at_half(fpr=fpr, tpr=tpr, floor=min(float(a) for a in resolvable_fprs)),
        auc_interval=auc_interval(auc=auc, n_members=members.size, n_nonmembers=nonmembers.size),
        n_members=int(members.size),
        n_nonmembers=int(nonmembers.size),
    )


def _best_ppv_at_half(*, fpr: np.ndarray, tpr: np.ndarray, floor: float) -> float:
    """max TPR/(TPR+FPR) over the ROC at FPR ≥ ``floor`` (prior ½, oracle thresholds).

    Along a segment of the (randomized-threshold) ROC the ratio is monotone,
    so the maximum sits at a vertex or at the segment point where FPR = floor.
    """
    candidates = [(tpr_at(fpr=fpr, tpr=tpr, alpha=floor), floor)]
    candidates += [(float(t), float(f)) for f, t in zip(fpr, tpr) if f >= floor and f > 0]
    return max(t / (t + f) for t, f in candidates if t + f > 0)


def roc_points(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve ``(fpr, tpr)`` of scores, tied scores grouped into one step.

    Vertices start at ``(0, 0)`` and end at ``(1, 1)``; a segment between two
    vertices is achieved by randomizing between their thresholds.
    """
    labels, scores = _labelled(members, nonmembers)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr


def roc_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """Area under the ROC curve, ``P(member score > non-member score) + ½·P(tie)``."""
    labels, scores = _labelled(members, nonmembers)
    return float(roc_auc_score(labels, scores))


def tpr_at(*, fpr: np.ndarray, tpr: np.ndarray, alpha: float) -> float:
    """Oracle TPR at FPR ``alpha``: linear interpolation of the ROC curve.

    Where the curve rises vertically at ``alpha`` (a block of members scored
    above every non-member still unclaimed), the top of the rise is taken:
    the oracle claims that whole block at no extra false-positive cost.
    """
    last = int(np.searchsorted(fpr, alpha, side="right")) - 1
    if last >= fpr.size - 1 or fpr[last] == alpha:
        return float(tpr[last])
    left, right = last, last + 1
    weight = (alpha - fpr[left]) / (fpr[right] - fpr[left])
    return float(tpr[left] + weight * (tpr[right] - tpr[left]))


def _labelled(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    members = np.asarray(members, dtype=np.float64)
    nonmembers = np.asarray(nonmembers, dtype=np.float64)
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError(
            f"need members and non-members, but got {members.size} and {nonmembers.size} scores"
        )
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return labels, np.concatenate([members, nonmembers])


def _str_keys(values: Mapping[float, float]) -> dict[str, float]:
    return {str(float(k)): float(v) for k, v in values.items()}
