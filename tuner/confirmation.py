"""Confirming a candidate before it is recommended.

A trial's risk estimate comes from one trained target; the chosen config is
retrained with fresh seeds and judged on the pooled evaluation of those
retrains (their claim counts add up, so the interval narrows and smaller
calibration FPRs may become resolvable). Results are cached in the study, so
rerunning a finished study does not retrain.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import optuna
import scipy.stats

from objectives import Exposure, is_adequate

from tuner.records import TrialRecord
from tuner.references import ReferenceTraining
from tuner.trial import (
    TrialContext,
    evaluate_defense,
    measure_dp_bounds,
    measure_realistic,
    measure_worst_case,
    trial_seed,
)

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
    exposed_per_seed: tuple[int, ...] = ()      # exposed members in each retrain
    exposure: dict[str, Any] | None = None      # union over retrains (see _pool_exposures)
    dp_bounds: dict[str, Any] | None = None     # DPBounds.to_dict() of the pooled figures (DP only)

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
            "exposed_per_seed": list(self.exposed_per_seed),
            "exposure": self.exposure,
            "dp_bounds": self.dp_bounds,
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
            exposed_per_seed=tuple(data.get("exposed_per_seed", ())),
            exposure=data.get("exposure"),
            dp_bounds=data.get("dp_bounds"),
        )


def utility_prediction_interval(
    per_seed: Sequence[float], per_seed_intervals: Sequence[tuple[float, float]], *, confidence: float = 0.95
) -> tuple[float, float]:
    """Where the test utility of one *new* training run of this defense should fall.

    Two sources of spread add up: training randomness (the retrains' sample
    variance s², inflated to a prediction for one new run, s²·(1 + 1/k), with
    Student's t at k − 1 degrees of freedom) and the test set's sampling
    error (each retrain's interval read as ±z·σ_test). The result is widened
    to contain every retrain's own interval, and clipped to [0, 1].

    Example:
        >>> lo, hi = utility_prediction_interval([0.90, 0.92, 0.94], [(0.88, 0.92), (0.90, 0.94), (0.92, 0.96)])
        >>> round(lo, 4), round(hi, 4)
        (0.8186, 1.0)
    """
    k = len(per_seed)
    mean = float(np.mean(per_seed))
    z = float(scipy.stats.norm.ppf(0.5 + confidence / 2))
    sampling_sd = float(np.mean([(hi - lo) / (2 * z) for lo, hi in per_seed_intervals]))
    training = 0.0
    if k > 1:
        t = float(scipy.stats.t.ppf(0.5 + confidence / 2, df=k - 1))
        training = (t * float(np.std(per_seed, ddof=1))) ** 2 * (1 + 1 / k)
    half = math.sqrt(training + (z * sampling_sd) ** 2)
    low = min(mean - half, *(lo for lo, _ in per_seed_intervals))
    high = max(mean + half, *(hi for _, hi in per_seed_intervals))
    return max(0.0, low), min(1.0, high)


def confirm(
    context: TrialContext,
    record: TrialRecord,
    *,
    study: optuna.Study,
    replicates: int,
    view: str = "realistic",
    references: ReferenceTraining | None = None,
) -> Confirmation:
    """Retrain ``record``'s defense with ``replicates`` fresh seeds and pool them.

    ``references``: where the retrains' reference models train (see
    :func:`tuner.trial.evaluate_defense`).

    ``view`` says which adequacy test the verdict applies (``realistic`` or
    ``worst_case``, the study's risk view). With ``adequacy.max_exposed``
    set, every retrain must also leave at most that many members exposed
    (each retrain is a model the user might get). The verdict is cached in the study's user attributes under the trial's
    number; a cached verdict with the same number of replicates is reused.
    """
    key = f"{_CACHE_PREFIX}{view}:{record.number}"
    cached = study.user_attrs.get(key)
    max_exposed = context.config.adequacy.max_exposed
    if cached is not None and len(cached["seeds"]) == replicates and "exposed_per_seed" in cached:
        cached = Confirmation.from_dict(cached)
        pooled = cached.realistic if view == "realistic" else cached.worst_case
        verdict = is_adequate(
            risk=pooled["risk"],
            max_ppv=context.config.adequacy.max_ppv,
            exposed=max(cached.exposed_per_seed, default=0),
            max_exposed=max_exposed,
        )
        return dataclasses.replace(cached, adequate=verdict)

    seeds = tuple(
        trial_seed(context.config.study.seed, record.number, replicate) for replicate in range(1, replicates + 1)
    )
    evaluations = [evaluate_defense(context, record.defense, seed=seed, references=references) for seed in seeds]
    runs = [e.scores for e in evaluations]
    realistic = measure_realistic(context, runs)
    worst = measure_worst_case(context, runs)
    utilities = tuple(e.utility_test for e in evaluations)
    epsilons = [e.epsilon for e in evaluations if e.epsilon is not None]
    exposed = tuple(e.exposure.count for e in evaluations if e.exposure is not None)
    deltas = [e.delta for e in evaluations if e.delta is not None]
    bounds = measure_dp_bounds(
        context,
        realistic=realistic,
        worst_case=worst,
        epsilon=max(epsilons) if epsilons else None,
        delta=max(deltas) if deltas else None,
    )
    confirmation = Confirmation(
        trial_number=record.number,
        seeds=seeds,
        utility_test=float(np.mean(utilities)),
        utility_test_per_seed=utilities,
        utility_test_interval=utility_prediction_interval(
            utilities, [e.utility_test_interval for e in evaluations]
        ),
        realistic=realistic.to_dict(),
        worst_case=worst.to_dict(),
        epsilon=max(epsilons) if epsilons else None,
        adequate=is_adequate(
            risk=realistic.risk if view == "realistic" else worst.risk,
            max_ppv=context.config.adequacy.max_ppv,
            exposed=max(exposed, default=0),  # every retrain is a model the user might get
            max_exposed=max_exposed,
        ),
        exposed_per_seed=exposed,
        exposure=_pool_exposures(
            [e.exposure for e in evaluations if e.exposure is not None],
            [e.false_exposure for e in evaluations if e.false_exposure is not None],
        ),
        dp_bounds=None if bounds is None else bounds.to_dict(),
    )
    study.set_user_attr(key, confirmation.to_dict())
    return confirmation


def _pool_exposures(exposures: list[Exposure], false_alarms: list[Exposure]) -> dict[str, Any] | None:
    """Members exposed in any retrain: row, in how many retrains, largest posterior, by which attack.

    ``false_alarms`` are the same counts on the evaluation non-members, kept
    per retrain beside the members' as the attacks' false-alarm yardstick.
    """
    if not exposures:
        return None
    seen: dict[int, dict[str, Any]] = {}
    for exposure in exposures:
        for record in exposure.records:
            entry = seen.setdefault(record.row, {"row": record.row, "retrains": 0, "posterior": 0.0, "attack": ""})
            entry["retrains"] += 1
            if record.posterior > entry["posterior"]:
                entry["posterior"], entry["attack"] = record.posterior, record.attack
    first = exposures[0]
    return {
        "prior": first.prior,
        "max_ppv": first.max_ppv,
        "attacks": list(first.attacks),
        "n_members": first.n_members,
        "retrains": len(exposures),
        "max_count": max(e.count for e in exposures),
        "members": sorted(seen.values(), key=lambda e: (-e["retrains"], -e["posterior"], e["row"])),
        "max_posterior": max(e.max_posterior for e in exposures),
        "per_retrain": [e.count for e in exposures],
        "false_alarms_per_retrain": [e.count for e in false_alarms],
        "n_nonmembers": false_alarms[0].n_members if false_alarms else None,
    }
