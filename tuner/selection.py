"""Choosing the weakest adequate defense among finished trials.

"Weakest" means the least utility given up for privacy: among adequate
trials, the highest *validation* utility (test utility is reported, never
used to choose). Trials within the best one's validation-utility confidence
interval count as tied, and ties go to the lesser intervention: no DP before
DP, larger ε before smaller, then less weight decay, dropout and label
smoothing, then later (or no) early stopping. The undefended baseline is the
least intervention of all, so if it is adequate and nothing beats it beyond
the tie margin, the answer is "no defense needed".
"""

from __future__ import annotations

import math
from typing import Sequence

from defenses import DefenseConfig
from tuner.records import TrialRecord


def intervention_key(defense: DefenseConfig, epsilon: float | None) -> tuple[float, ...]:
    """Sort key: smaller means a lesser intervention (see the module docstring)."""
    dp_on = defense.dp is not None
    # Larger ε is a weaker intervention; a DP run without a measured ε sorts last among DP runs.
    eps_rank = -(epsilon if epsilon is not None and math.isfinite(epsilon) else 0.0) if dp_on else 0.0
    patience = defense.early_stopping_patience
    stopping = (0.0, 0.0) if patience is None else (1.0, -float(patience))
    return (
        float(dp_on),
        eps_rank,
        defense.weight_decay,
        defense.dropout,
        defense.label_smoothing,
        *stopping,
    )


def tie_margin(record: TrialRecord) -> float:
    """Half-width of a trial's validation-utility confidence interval."""
    low, high = record.utility_validation_interval
    return (high - low) / 2.0


def rank_candidates(records: Sequence[TrialRecord], *, view: str = "realistic") -> list[TrialRecord]:
    """Adequate trials in recommendation order (first = the recommendation).

    Args:
        records: completed trials.
        view: ``"realistic"`` or ``"worst_case"``: which adequacy test counts.

    Returns:
        The near-tie group of the best validation utility ordered by
        intervention, followed by the other adequate trials by decreasing
        validation utility (the fallbacks when a confirmation fails).
    """
    adequate = [r for r in records if r.adequate_in(view)]
    if not adequate:
        return []
    best = max(adequate, key=lambda r: r.utility_validation)
    floor = best.utility_validation - tie_margin(best)
    tied = sorted(
        (r for r in adequate if r.utility_validation >= floor),
        key=lambda r: (intervention_key(r.defense, r.epsilon), -r.utility_validation, r.number),
    )
    rest = sorted(
        (r for r in adequate if r.utility_validation < floor),
        key=lambda r: (-r.utility_validation, intervention_key(r.defense, r.epsilon), r.number),
    )
    return tied + rest


def least_risky(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The trial with the lowest realistic risk (shown when none is adequate)."""
    if not records:
        return None
    return min(records, key=lambda r: (r.risk, -r.utility_validation, r.number))


def pareto_front(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Trials not dominated in (higher validation utility, lower realistic risk)."""
    front = []
    for r in records:
        dominated = any(
            o.utility_validation >= r.utility_validation
            and o.risk <= r.risk
            and (o.utility_validation > r.utility_validation or o.risk < r.risk)
            for o in records
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r.risk)
