"""The adequacy test and the scalar objective the search optimizes.

Pure keyword-only functions: the tuner wires them into Optuna (objective
value and constraint) and into the final recommendation.
"""

from __future__ import annotations


def is_adequate(
    *,
    risk: float,
    max_ppv: float,
    exposed: int | None = None,
    max_exposed: int | None = None,
) -> bool:
    """Whether a defense is adequate: ``risk ≤ max_ppv`` and, if bounded, few exposed records.

    With the default ``max_ppv = 0.5`` an attacker's membership claim is more
    likely wrong than right, so every individual keeps plausible deniability.

    Args:
        risk: the realistic risk (the largest PPV of the attacker's claims).
        max_ppv: the bound on it.
        exposed: number of records that stay exposed (optional extra bound).
        max_exposed: the bound on ``exposed``; ``None`` for no bound.

    Raises:
        ValueError: if ``max_exposed`` is set but ``exposed`` is not.

    Example:
        >>> is_adequate(risk=0.3, max_ppv=0.5)
        True
        >>> is_adequate(risk=0.3, max_ppv=0.5, exposed=4, max_exposed=3)
        False
    """
    if max_exposed is not None and exposed is None:
        raise ValueError(
            f"max_exposed={max_exposed!r} needs the number of exposed records, but got exposed=None"
        )
    if risk > max_ppv:
        return False
    return max_exposed is None or exposed is None or exposed <= max_exposed


def weighted_objective(*, utility: float, advantage: float, risk_weight: float) -> float:
    """``J = utility − risk_weight · max(0, advantage)``, to be maximized.

    The realistic advantage ``(PPV − π)/(1 − π)`` is negative when the
    attacker's claims are worse than picking records at random; the floor at
    0 stops such a trial from earning a bonus for it: worse than guessing
    earns nothing, since a real attacker would simply not use that attack.

    Example:
        >>> weighted_objective(utility=0.9, advantage=0.2, risk_weight=0.5)
        0.8
    """
    return utility - risk_weight * max(0.0, advantage)


def adequacy_constraint(*, risk: float, max_ppv: float) -> float:
    """``risk − max_ppv``: Optuna's constraint convention, where ``≤ 0`` is feasible."""
    return risk - max_ppv


def exposure_constraint(*, exposed: int, max_exposed: int) -> float:
    """``exposed − max_exposed``: ``≤ 0`` (feasible) when few enough members stay exposed.

    Example:
        >>> exposure_constraint(exposed=2, max_exposed=3)
        -1.0
    """
    return float(exposed - max_exposed)
