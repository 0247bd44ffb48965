"""Realistic membership-inference risk: the precision of an attacker's claims.

The attacker of the realistic threat model picks each threshold on records
it knows are non-members (its calibration pool), aiming for a
false-positive rate α, and then claims records of a population in which only
a fraction π (the membership prior) are members. What such a claim
discloses is its precision, ``PPV = π·TPR / (π·TPR + (1 − π)·FPR)``, with
TPR and FPR realized on the evaluation members and non-members.

Only operating points the evaluation can observe count: an α is
*resolvable* when the evaluation non-members are expected to contain at
least ``min_expected_false_positives`` false positives at that rate. The
risk is the largest PPV over attacks and resolvable α (the attacker is
given its best configuration), with a Bonferroni Clopper–Pearson interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from objectives.calibration import calibrate_threshold, expected_claims
from objectives.stats import (
    binomial_interval,
    break_even_prior,
    is_resolvable,
    nonmembers_needed,
    ppv,
    ppv_interval,
    ppv_upper_bound,
    realistic_advantage,
    resolution_warning,
)


@dataclass(frozen=True)
class AttackScores:
    """One attack's scores on one trained target, for the three record sets.

    Args:
        members: scores of the evaluation members (the target's training records).
        nonmembers: scores of the evaluation non-members.
        calibration: scores of the attacker's calibration records: known
            non-members from its own pool, the only set thresholds are
            chosen on.
    """

    members: np.ndarray
    nonmembers: np.ndarray
    calibration: np.ndarray

    def __post_init__(self) -> None:
        for name in ("members", "nonmembers", "calibration"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.ndim != 1 or values.size == 0:
                raise ValueError(
                    f"AttackScores.{name} must be a non-empty 1-d array, "
                    f"but got shape {values.shape}"
                )
            if np.isnan(values).any():
                raise ValueError(f"AttackScores.{name} contain NaN")
            object.__setattr__(self, name, values)


@dataclass(frozen=True)
class OperatingPoint:
    """One attack at one calibration FPR α, counts pooled over runs.

    ``tpr_interval`` and ``fpr_interval`` are two-sided Clopper–Pearson
    intervals; ``ppv_interval`` the Bonferroni interval of
    :func:`objectives.stats.ppv_interval`; ``ppv_upper`` a one-sided upper
    bound (:func:`objectives.stats.ppv_upper_bound`), all at the run's
    confidence (95 % by default).
    """

    attack: str
    target_fpr: float
    resolvable: bool
    tp: float
    n_members: int
    fp: float
    n_nonmembers: int
    tpr: float
    fpr: float
    tpr_interval: tuple[float, float]
    fpr_interval: tuple[float, float]
    ppv: float
    ppv_interval: tuple[float, float]
    ppv_upper: float
    advantage: float
    break_even_prior: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats, ints, bools, strings and lists."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class RealisticRisk:
    """The realistic risk of a trial (one run) or a confirmation (pooled runs).

    ``risk`` is the largest PPV over attacks and resolvable α; ``worst`` is
    the operating point that attains it. ``upper_bound`` is a one-sided
    upper confidence bound on the largest true PPV over the resolvable
    points (the largest per-point ``ppv_upper``: the point where the true
    maximum sits is covered with the per-point confidence, and the maximum
    of the bounds is at least its bound). ``nonmembers_needed`` says, for
    each α too small for the evaluation, how many evaluation non-members
    would resolve it; ``warning`` says so in words when the lowest α is
    among them.

    Example:
        >>> same = AttackScores(members=np.zeros(100), nonmembers=np.zeros(100),
        ...                     calibration=np.zeros(10))
        >>> risk = realistic_risk([{"loss": same}], prior=0.01, calibration_fprs=[0.01, 0.1],
        ...                       max_ppv=0.5)
        >>> round(risk.risk, 9), risk.adequate, risk.nonmembers_needed  # no signal: PPV = π
        (0.01, True, {0.01: 1000})
    """

    prior: float
    max_ppv: float
    risk: float
    interval: tuple[float, float]
    upper_bound: float
    advantage: float
    break_even_prior: float
    worst: OperatingPoint | None
    points: tuple[OperatingPoint, ...]
    unresolvable_fprs: tuple[float, ...]
    nonmembers_needed: dict[float, int]
    adequate: bool
    uncertain: bool
    warning: str | None = None

    def ppv_at(self, prior: float) -> float:
        """The risk at another prior: max PPV over resolvable points (the risk curve over π)."""
        resolvable = [p for p in self.points if p.resolvable]
        return max((ppv(tpr=p.tpr, fpr=p.fpr, prior=prior) for p in resolvable), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``nonmembers_needed`` keys are ``str(α)`` (JSON keys are strings)."""
        return {
            "prior": float(self.prior),
            "max_ppv": float(self.max_ppv),
            "risk": float(self.risk),
            "interval": [float(v) for v in self.interval],
            "upper_bound": float(self.upper_bound),
            "advantage": float(self.advantage),
            "break_even_prior": float(self.break_even_prior),
            "worst": None if self.worst is None else self.worst.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "unresolvable_fprs": [float(a) for a in self.unresolvable_fprs],
            "nonmembers_needed": {str(float(a)): int(n) for a, n in self.nonmembers_needed.items()},
            "adequate": bool(self.adequate),
            "uncertain": bool(self.uncertain),
            "warning": self.warning,
        }


def realistic_risk(
    runs: Sequence[Mapping[str, AttackScores]],
    *,
    prior: float,
    calibration_fprs: Sequence[float],
    max_ppv: float,
    min_expected_false_positives: float = 10.0,
    confidence: float = 0.95,
) -> RealisticRisk:
    """Realistic risk of one or several trained targets.

    For each attack and α, in each run the threshold is calibrated on that
    run's ``calibration`` scores only, claims are counted (as expected counts)
    on that run's members and non-members, and the counts are pooled over
    runs. Membership enters only through which array a score sits in: it is
    never used to choose a threshold.

    Args:
        runs: one mapping ``attack name -> AttackScores`` per trained target.
        prior: membership prior π, in ``(0, 1)``.
        calibration_fprs: the α the attacker aims for, each in ``(0, 1]``.
        max_ppv: the adequacy bound on the PPV, in ``(0, 1]``.
        min_expected_false_positives: resolvability: α counts when
            ``n_nonmembers·α`` (pooled) reaches this.
        confidence: coverage of the intervals.

    Returns:
        The :class:`RealisticRisk`.

    Raises:
        ValueError: on invalid arguments, or when no α is resolvable (the
            message says how many non-members each α needs).
    """
    attacks = attack_names(runs)
    _check_arguments(prior=prior, calibration_fprs=calibration_fprs, max_ppv=max_ppv)
    alphas = list(dict.fromkeys(float(a) for a in calibration_fprs))  # unique, in given order
    points = tuple(
        _operating_point(
            runs,
            attack=attack,
            alpha=alpha,
            prior=prior,
            max_ppv=max_ppv,
            min_expected_false_positives=min_expected_false_positives,
            confidence=confidence,
        )
        for attack in attacks
        for alpha in alphas
    )
    unresolvable = tuple(sorted({p.target_fpr for p in points if not p.resolvable}))
    needed = {
        a: nonmembers_needed(alpha=a, min_expected_false_positives=min_expected_false_positives)
        for a in unresolvable
    }
    resolvable = [p for p in points if p.resolvable]
    if not resolvable:
        n = points[0].n_nonmembers
        wants = ", ".join(f"alpha={a} needs {needed[a]}" for a in unresolvable)
        raise ValueError(
            f"no calibration FPR is resolvable with {n} evaluation non-members "
            f"(n_nonmembers * alpha must reach {min_expected_false_positives} expected false "
            f"positives): {wants}; add non-members or larger calibration_fprs"
        )
    worst = max(resolvable, key=lambda p: (p.ppv, p.ppv_interval[1]))
    low, high = worst.ppv_interval
    return RealisticRisk(
        prior=prior,
        max_ppv=max_ppv,
        risk=worst.ppv,
        interval=worst.ppv_interval,
        upper_bound=max(p.ppv_upper for p in resolvable),
        advantage=worst.advantage,
        break_even_prior=min(p.break_even_prior for p in resolvable),
        worst=worst,
        points=points,
        unresolvable_fprs=unresolvable,
        nonmembers_needed=needed,
        adequate=worst.ppv <= max_ppv,
        uncertain=low <= max_ppv < high,
        warning=resolution_warning(
            n_nonmembers=points[0].n_nonmembers,
            calibration_fprs=alphas,
            min_expected_false_positives=min_expected_false_positives,
            pooled_runs=len(runs),
        ),
    )


def _operating_point(
    runs: Sequence[Mapping[str, AttackScores]],
    *,
    attack: str,
    alpha: float,
    prior: float,
    max_ppv: float,
    min_expected_false_positives: float,
    confidence: float,
) -> OperatingPoint:
    tp = fp = 0.0
    n_members = n_nonmembers = 0
    for run in runs:
        scores = run[attack]
        threshold = calibrate_threshold(scores.calibration, alpha=alpha)
        tp += expected_claims(scores.members, threshold)
        fp += expected_claims(scores.nonmembers, threshold)
        n_members += scores.members.size
        n_nonmembers += scores.nonmembers.size
    tpr, fpr = tp / n_members, fp / n_nonmembers
    precision = ppv(tpr=tpr, fpr=fpr, prior=prior)
    return OperatingPoint(
        attack=attack,
        target_fpr=alpha,
        resolvable=is_resolvable(
            n_nonmembers=n_nonmembers,
            alpha=alpha,
            min_expected_false_positives=min_expected_false_positives,
        ),
        tp=tp,
        n_members=n_members,
        fp=fp,
        n_nonmembers=n_nonmembers,
        tpr=tpr,
        fpr=fpr,
        tpr_interval=binomial_interval(successes=tp, trials=n_members, confidence=confidence),
        fpr_interval=binomial_interval(successes=fp, trials=n_nonmembers, confidence=confidence),
        ppv=precision,
        ppv_interval=ppv_interval(
            tp=tp,
            n_members=n_members,
            fp=fp,
            n_nonmembers=n_nonmembers,
            prior=prior,
            confidence=confidence,
        ),
        ppv_upper=ppv_upper_bound(
            tp=tp,
            n_members=n_members,
            fp=fp,
            n_nonmembers=n_nonmembers,
            prior=prior,
            confidence=confidence,
        ),
        advantage=realistic_advantage(ppv=precision, prior=prior),
        break_even_prior=break_even_prior(tpr=tpr, fpr=fpr, max_ppv=max_ppv),
    )


def attack_names(runs: Sequence[Mapping[str, AttackScores]]) -> list[str]:
    """The attacks every run scored (in the first run's order); raises if runs disagree."""
    if len(runs) == 0:
        raise ValueError("runs must hold at least one trained target's scores, but got none")
    attacks = list(runs[0])
    if not attacks:
        raise ValueError("runs[0] holds no attack scores")
    for i, run in enumerate(runs):
        if set(run) != set(attacks):
            raise ValueError(
                f"every run must score the same attacks, but runs[0] has {sorted(attacks)} and "
                f"runs[{i}] has {sorted(run)}"
            )
    return attacks


def _check_arguments(*, prior: float, calibration_fprs: Sequence[float], max_ppv: float) -> None:
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), but got prior={prior!r}")
    if not 0.0 < max_ppv <= 1.0:
        raise ValueError(f"max_ppv must be in (0, 1], but got max_ppv={max_ppv!r}")
    if len(calibration_fprs) == 0:
        raise ValueError(
            "calibration_fprs must name at least one false-positive rate, but got none"
        )
    if any(not 0.0 < a <= 1.0 for a in calibration_fprs):
        raise ValueError(f"calibration_fprs must lie in (0, 1], but got {list(calibration_fprs)}")


def _plain(value: Any) -> Any:
    """numpy scalars to Python numbers, tuples to lists: what ``json.dumps`` takes."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value
