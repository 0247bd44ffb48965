"""A finished trial as the tuner's later stages see it, read from the study.

Every figure a trial produced is stored in the Optuna study itself (as user
attributes), so the recommendation, the report and the export can be rebuilt
from the storage alone, by any worker, after any interruption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from defenses import DefenseConfig
from tuner.search_space import BASELINE_ATTR
from tuner.trial import Evaluation



def evaluation_attrs(evaluation: Evaluation) -> dict[str, Any]:
    """The JSON-ready user attributes that record one evaluation in the study."""
    return {
        "defense": evaluation.defense.to_dict(),
        "seed": evaluation.seed,
        "utility_validation": evaluation.utility_validation,
        "utility_validation_interval": list(evaluation.utility_validation_interval),
        "utility_test": evaluation.utility_test,
        "utility_test_interval": list(evaluation.utility_test_interval),
        "realistic": evaluation.realistic.to_dict(),
        "worst_case": evaluation.worst_case.to_dict(),
        "epochs_run": evaluation.epochs_run,
        "epsilon": evaluation.epsilon,
        "delta": evaluation.delta,
        "noise_multiplier": evaluation.noise_multiplier,
    }


@dataclass(frozen=True)
class TrialRecord:
    """The figures of one completed trial, flattened for choosing and reporting."""

    number: int
    is_baseline: bool
    defense: DefenseConfig
    utility_validation: float
    utility_validation_interval: tuple[float, float]
    utility_test: float
    utility_test_interval: tuple[float, float]
    risk: float
    risk_interval: tuple[float, float]
    advantage: float
    break_even_prior: float
    adequate: bool
    uncertain: bool
    worst_case_risk: float
    worst_case_adequate: bool
    worst_case_auc: float
    worst_case_tpr: dict[float, float]
    epochs_run: int
    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    realistic: dict[str, Any]
    worst_case: dict[str, Any]

    def adequate_in(self, view: str) -> bool:
        """Adequacy under the ``realistic`` or the ``worst_case`` view."""
        return self.adequate if view == "realistic" else self.worst_case_adequate


def record_from_trial(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """Flatten a completed trial's user attributes."""
    attrs = trial.user_attrs
    realistic, worst = attrs["realistic"], attrs["worst_case"]
    return TrialRecord(
        number=trial.number,
        is_baseline=bool(attrs.get(BASELINE_ATTR, False)),
        defense=DefenseConfig.from_dict(attrs["defense"]),
        utility_validation=attrs["utility_validation"],
        utility_validation_interval=tuple(attrs["utility_validation_interval"]),
        utility_test=attrs["utility_test"],
        utility_test_interval=tuple(attrs["utility_test_interval"]),
        risk=realistic["risk"],
        risk_interval=tuple(realistic["interval"]),
        advantage=realistic["advantage"],
        break_even_prior=realistic["break_even_prior"],
        adequate=bool(realistic["adequate"]),
        uncertain=bool(realistic["uncertain"]),
        worst_case_risk=worst["risk"],
        worst_case_adequate=bool(worst["adequate"]),
        worst_case_auc=worst["auc"],
        worst_case_tpr={float(k): v for k, v in worst["tpr_at_fpr"].items()},
        epochs_run=attrs["epochs_run"],
        epsilon=attrs["epsilon"],
        delta=attrs["delta"],
        noise_multiplier=attrs["noise_multiplier"],
        realistic=realistic,
        worst_case=worst,
    )


def completed_records(study: optuna.Study) -> list[TrialRecord]:
    """Records of every completed trial, in trial-number order."""
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [record_from_trial(t) for t in sorted(finished, key=lambda t: t.number) if "realistic" in t.user_attrs]
