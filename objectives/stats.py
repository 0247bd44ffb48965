"""Pure statistics of membership claims: intervals, precision, break-even prior.

Every function is keyword-only and side-effect free. Counts may be
fractional: with randomized thresholds (:mod:`objectives.calibration`) the
number of claims is an expected count, and the binomial intervals below are
evaluated at it (the Beta quantiles of Clopper–Pearson are defined for
non-integer shape parameters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import beta, norm

INTERVAL_METHODS = ("clopper-pearson", "wilson")


def binomial_interval(
    *,
    successes: float,
    trials: int,
    confidence: float = 0.95,
    method: str = "clopper-pearson",
) -> tuple[float, float]:
    """Two-sided confidence interval for a binomial proportion.

    Args:
        successes: observed (or expected) successes, ``0 ≤ successes ≤ trials``.
        trials: number of trials, ``≥ 0``; zero trials give ``(0.0, 1.0)``.
        confidence: coverage, in ``(0, 1)``.
        method: ``"clopper-pearson"`` (exact: guaranteed coverage, from Beta
            quantiles) or ``"wilson"`` (score interval: shorter, approximate).

    Returns:
        ``(low, high)`` with ``0 ≤ low ≤ successes/trials ≤ high ≤ 1``.

    Example:
        >>> binomial_interval(successes=0, trials=10)[0]
        0.0
    """
    _check_confidence(confidence)
    if method not in INTERVAL_METHODS:
        raise ValueError(
            f"method must be one of {list(INTERVAL_METHODS)}, but got method={method!r}"
        )
    if trials < 0 or not 0.0 <= successes <= trials:
        raise ValueError(
            f"need 0 <= successes <= trials, but got successes={successes!r}, trials={trials!r}"
        )
    if trials == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2.0
    if method == "wilson":
        z = float(norm.ppf(1.0 - tail))
        p = successes / trials
        denominator = 1.0 + z * z / trials
        center = (p + z * z / (2.0 * trials)) / denominator
        half = z / denominator * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials))
        return max(0.0, center - half), min(1.0, center + half)
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = (
        1.0
        if successes == trials
        else float(beta.ppf(1.0 - tail, successes + 1, trials - successes))
    )
    return low, high


def ppv(*, tpr: float, fpr: float, prior: float) -> float:
    """Precision of membership claims at membership prior π.

    ``PPV = π·TPR / (π·TPR + (1 − π)·FPR)``: of the records the attacker
    claims, the fraction that are members, when a fraction π of the records
    it targets are members. Returns 0.0 when the attacker claims no one
    (denominator 0): nothing is disclosed.

    Example:
        >>> round(ppv(tpr=0.3, fpr=0.01, prior=0.01), 5)
        0.23256
    """
    claimed = prior * tpr + (1.0 - prior) * fpr
    if claimed <= 0.0:
        return 0.0
    return prior * tpr / claimed


def ppv_interval(
    *,
    tp: float,
    n_members: int,
    fp: float,
    n_nonmembers: int,
    prior: float,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Confidence interval for the PPV from member and non-member claim counts.

    PPV is increasing in TPR and decreasing in FPR, so its extremes over a
    rectangle of (TPR, FPR) values sit at two corners. Each rate gets a
    Clopper–Pearson interval at level ``1 − (1 − confidence)/2``; by
    Bonferroni, both hold at once with probability at least ``confidence``,
    and then the PPV lies between ``ppv(tpr_low, fpr_high)`` and
    ``ppv(tpr_high, fpr_low)``. The joint coverage is therefore ≥
    ``confidence`` without assuming anything about how TPR and FPR covary.

    Returns:
        ``(low, high)``.
    """
    _check_confidence(confidence)
    each = 1.0 - (1.0 - confidence) / 2.0
    tpr_low, tpr_high = binomial_interval(successes=tp, trials=n_members, confidence=each)
    fpr_low, fpr_high = binomial_interval(successes=fp, trials=n_nonmembers, confidence=each)
    return (
        ppv(tpr=tpr_low, fpr=fpr_high, prior=prior),
        ppv(tpr=tpr_high, fpr=fpr_low, prior=prior),
    )


def ppv_upper_bound(
    *,
    tp: float,
    n_members: int,
    fp: float,
    n_nonmembers: int,
    prior: float,
    confidence: float = 0.95,
) -> float:
    """One-sided upper confidence bound on the PPV (a 95 % upper bound by default).

    ``ppv(TPR_high, FPR_low)`` with ``TPR_high`` and ``FPR_low`` one-sided
    Clopper–Pearson bounds at level ``1 − (1 − confidence)/2`` each; by
    Bonferroni both hold at once with probability ≥ ``confidence``, and the
    PPV, increasing in TPR and decreasing in FPR, is then below the bound.
    A one-sided bound at level L is the end of the two-sided interval at
    level ``2L − 1``, here exactly ``confidence``.

    Example:
        >>> round(ppv_upper_bound(tp=30, n_members=100, fp=1, n_nonmembers=100, prior=0.01), 4)
        0.941
    """
    _check_confidence(confidence)
    tpr_high = binomial_interval(successes=tp, trials=n_members, confidence=confidence)[1]
    fpr_low = binomial_interval(successes=fp, trials=n_nonmembers, confidence=confidence)[0]
    return ppv(tpr=tpr_high, fpr=fpr_low, prior=prior)


def auc_interval(
    *, auc: float, n_members: int, n_nonmembers: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Normal-approximation interval for an AUC (Hanley & McNeil, Radiology 1982).

    ``SE² = [A(1−A) + (n₁−1)(Q₁−A²) + (n₀−1)(Q₂−A²)] / (n₁·n₀)`` with
    ``Q₁ = A/(2−A)`` and ``Q₂ = 2A²/(1+A)`` (their Table/Eq. for the
    exponential-score model), clipped to [0, 1].

    Example:
        >>> [round(v, 4) for v in auc_interval(auc=0.75, n_members=100, n_nonmembers=100)]
        [0.6825, 0.8175]
    """
    _check_confidence(confidence)
    if n_members < 1 or n_nonmembers < 1:
        return 0.0, 1.0
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    variance = (
        auc * (1.0 - auc)
        + (n_members - 1) * (q1 - auc * auc)
        + (n_nonmembers - 1) * (q2 - auc * auc)
    ) / (n_members * n_nonmembers)
    half = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0)) * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def realistic_advantage(*, ppv: float, prior: float) -> float:
    """How much a claim raises belief in membership above the prior, scaled to [−π/(1−π), 1].

    ``(PPV − π) / (1 − π)``: 0 when claims are no better than picking records
    at random, 1 when every claim is right.
    """
    return (ppv - prior) / (1.0 - prior)


def break_even_prior(*, tpr: float, fpr: float, max_ppv: float) -> float:
    """The largest membership prior π at which ``PPV(π) ≤ max_ppv``.

    PPV grows with π; solving ``PPV(π) = b`` gives
    ``π* = b·F / (T·(1 − b) + b·F)``. Edge cases: ``T == 0`` or ``b ≥ 1``:
    claims never exceed the bound, 1.0; ``F == 0 < T``: every claim is right
    at any π > 0, 0.0.

    Example:
        >>> break_even_prior(tpr=0.5, fpr=0.05, max_ppv=0.5)  # 0.025 / (0.25 + 0.025)
        0.09090909090909091
    """
    if tpr <= 0.0 or max_ppv >= 1.0:
        return 1.0
    if fpr <= 0.0:
        return 0.0
    return max_ppv * fpr / (tpr * (1.0 - max_ppv) + max_ppv * fpr)


def dp_tpr_bound(*, epsilon: float, delta: float, fpr: float) -> float:
    """Largest TPR any membership test achieves at ``fpr`` against an (ε, δ)-DP run.

    ``TPR ≤ e^ε·FPR + δ`` (Kairouz, Oh & Viswanath, ICML 2015, the
    hypothesis-testing view of DP), capped at 1.

    Example:
        >>> round(dp_tpr_bound(epsilon=1.0, delta=1e-5, fpr=0.01), 6)
        0.027193
    """
    if epsilon < 0 or not 0.0 <= delta <= 1.0 or not 0.0 <= fpr <= 1.0:
        raise ValueError(
            f"need epsilon >= 0, 0 <= delta <= 1 and 0 <= fpr <= 1, but got epsilon={epsilon!r}, "
            f"delta={delta!r}, fpr={fpr!r}"
        )
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, math.exp(epsilon) * fpr + delta)


def dp_ppv_bound(*, epsilon: float, delta: float, fpr: float, prior: float) -> float:
    """Largest PPV an (ε, δ)-DP training run allows at false-positive rate ``fpr``.

    Any membership test against an (ε, δ)-DP mechanism satisfies
    ``TPR ≤ e^ε·FPR + δ`` (Kairouz et al. 2015, hypothesis-testing view of
    DP); with TPR capped at 1 that bounds the PPV at prior π.
    """
    tpr = dp_tpr_bound(epsilon=epsilon, delta=delta, fpr=fpr)
    return ppv(tpr=tpr, fpr=fpr, prior=prior)


def resolution_warning(
    *,
    n_nonmembers: int,
    calibration_fprs: Sequence[float],
    min_expected_false_positives: float,
    pooled_runs: int = 1,
) -> str | None:
    """A warning when the evaluation non-members cannot resolve the lowest calibration FPR.

    An FPR α is observable only when ``n_nonmembers·α`` reaches
    ``min_expected_false_positives`` (with fewer than ``1/α`` non-members
    not even one false positive is expected at α). Returns ``None`` when
    the lowest α is resolvable.

    ``pooled_runs`` > 1 says that ``n_nonmembers`` counts the scores of
    several trained targets pooled (a confirmation's retrains, each scoring
    the same non-members): the message then says so, and how many
    non-members per run would resolve α, so it is not read as a different
    data set from the single-run warning.

    Example:
        >>> resolution_warning(n_nonmembers=359, calibration_fprs=[0.001, 0.01, 0.1],
        ...                    min_expected_false_positives=10)[:60]
        'the 359 evaluation non-members cannot resolve the lowest cal'
    """
    lowest = min(calibration_fprs)
    if is_resolvable(
        n_nonmembers=n_nonmembers, alpha=lowest, min_expected_false_positives=min_expected_false_positives
    ):
        return None
    needed = nonmembers_needed(alpha=lowest, min_expected_false_positives=min_expected_false_positives)
    expected = n_nonmembers * lowest
    if pooled_runs > 1:
        who = (
            f"the {n_nonmembers} evaluation non-member scores pooled over {pooled_runs} runs "
            f"({n_nonmembers / pooled_runs:g} non-members each)"
        )
        fix = f"{needed} pooled scores ({math.ceil(needed / pooled_runs)} non-members per run) would resolve it"
    else:
        who = f"the {n_nonmembers} evaluation non-members"
        fix = f"{needed} non-members would resolve it"
    return (
        f"{who} cannot resolve the lowest calibration FPR "
        f"{lowest:g}: {expected:.3g} false positives expected there (fewer than "
        f"{min_expected_false_positives:g}{'; not even one' if expected < 1 else ''}), so risk at "
        f"that FPR is not measured; {fix} "
        "(raise data.roles.nonmembers or use a larger data set)"
    )


def nonmembers_needed(*, alpha: float, min_expected_false_positives: float) -> int:
    """Evaluation non-members that make α resolvable: ``ceil(min_expected_fp / α)``."""
    return math.ceil(min_expected_false_positives / alpha * (1.0 - 1e-12))


def is_resolvable(*, n_nonmembers: int, alpha: float, min_expected_false_positives: float) -> bool:
    """Whether ``n_nonmembers·α ≥ min_expected_false_positives`` (up to float rounding)."""
    return n_nonmembers * alpha >= min_expected_false_positives * (1.0 - 1e-12)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), but got confidence={confidence!r}")
