"""Confirming a candidate before it is recommended.

A trial's risk estimate comes from one trained target; the chosen config is
retrained with fresh seeds and judged on the pooled evaluation of those
retrains (their claim counts add up, so the interval narrows and smaller
calibration FPRs may become resolvable). Results are cached in the study, so
rerunning a finished study does not retrain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from tuner.records import TrialRecord
from tuner.trial import TrialContext, evaluate_defense, measure_realistic, measure_worst_case, trial_seed

_CACHE_PREFIX = "confirmation:"


@dataclass(frozen=True)
class Confirmation:
    """The pooled verdict of a candidate's retrains with fresh seeds."""

    trial_number: int
    seeds: tuple[int, ...]
    utility_test: float                  # mean over the retrains
    utility_test_per_seed: tuple[float, ...]
    utility_test_interval: tuple[float, float]   # min/max of the retrains' intervals
    realistic: dict[str, Any]            # RealisticRisk.to_dict() of the pooled runs
    worst_case: dict[str, Any]           # WorstCaseRisk.to_dict() of the pooled runs
    epsilon: float | None                # the largest ε a retrain spent (DP only)
    adequate: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_number": self.trial_number,
            "seeds": list(self.seeds),
            "utility_test": self.utility_test,
            "utility_test_per_seed": list(self.utility_test_per_seed),
            "utility_test_interval": list(self.utility_test_interval),
            "realistic": self.realistic,
            "worst_case": self.worst_case,
            "epsilon": self.epsilon,
            "adequate": self.adequate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Confirmation":
        return cls(
            trial_number=data["trial_number"],
            seeds=tuple(data["seeds"]),
            utility_test=data["utility_test"],
            utility_test_per_seed=tuple(data["utility_test_per_seed"]),
            utility_test_interval=tuple(data["utility_test_interval"]),
            realistic=data["realistic"],
            worst_case=data["worst_case"],
            epsilon=data["epsilon"],
            adequate=data["adequate"],
        )


def confirm(
    context: TrialContext, record: TrialRecord, *, study: optuna.Study, replicates: int, view: str = "realistic"
) -> Confirmation:
    """Retrain ``record``'s defense with ``replicates`` fresh seeds and pool them.

    ``view`` says which adequacy test the verdict applies (``realistic`` or
    ``worst_case``, the study's risk view). The verdict is cached in the study's user attributes under the trial's
    number; a cached verdict with the same number of replicates is reused.
    """
    key = f"{_CACHE_PREFIX}{view}:{record.number}"
    cached = study.user_attrs.get(key)
    if cached is not None and len(cached["seeds"]) == replicates:
        return Confirmation.from_dict(cached)

    seeds = tuple(
        trial_seed(context.config.study.seed, record.number, replicate) for replicate in range(1, replicates + 1)
    )
    evaluations = [evaluate_defense(context, record.defense, seed=seed) for seed in seeds]
    runs = [e.scores for e in evaluations]
    realistic = measure_realistic(context, runs)
    worst = measure_worst_case(context, runs)
    utilities = tuple(e.utility_test for e in evaluations)
    epsilons = [e.epsilon for e in evaluations if e.epsilon is not None]
    confirmation = Confirmation(
        trial_number=record.number,
        seeds=seeds,
        utility_test=float(np.mean(utilities)),
        utility_test_per_seed=utilities,
        utility_test_interval=(
            min(e.utility_test_interval[0] for e in evaluations),
            max(e.utility_test_interval[1] for e in evaluations),
        ),
        realistic=realistic.to_dict(),
        worst_case=worst.to_dict(),
        epsilon=max(epsilons) if epsilons else None,
        adequate=realistic.adequate if view == "realistic" else worst.adequate,
    )
    study.set_user_attr(key, confirmation.to_dict())
    return confirmation
