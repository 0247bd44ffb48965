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
from objectives import is_adequate
from tuner.search_space import BASELINE_ATTR
from tuner.trial import Evaluation

EVALUATION_ATTR = "evaluation"  # the trial user attribute holding its whole evaluation


def evaluation_attrs(evaluation: Evaluation) -> dict[str, Any]:
    """The JSON-ready fields that record one evaluation in the study.

    The trial loop stores them, with the trial's ROC summary and duration, as
    one user attribute (:data:`EVALUATION_ATTR`): one storage write per
    trial instead of twenty, each a round trip to the study's database
    (a SQLite commit, or a network round trip to a shared PostgreSQL).
    Read them back with :func:`trial_attrs`.
    """
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
        "sample_rate": evaluation.sample_rate,
        "steps": evaluation.steps,
        "exposure": None if evaluation.exposure is None else evaluation.exposure.to_dict(),
        "false_exposure": None if evaluation.false_exposure is None else evaluation.false_exposure.to_dict(),
        "dp_bounds": None if evaluation.dp_bounds is None else evaluation.dp_bounds.to_dict(),
    }


def trial_attrs(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's user attributes with its evaluation's fields at the top level.

    Studies written before the evaluation became one attribute hold the same
    fields flat; both read the same way.

    Example:
        >>> trial = optuna.trial.create_trial(value=0.0, user_attrs={"baseline": True,
        ...     EVALUATION_ATTR: {"seed": 3}})
        >>> trial_attrs(trial)
        {'baseline': True, 'seed': 3}
    """
    attrs = trial.user_attrs
    evaluation = attrs.get(EVALUATION_ATTR)
    if not isinstance(evaluation, dict):
        return attrs
    return {**{k: v for k, v in attrs.items() if k != EVALUATION_ATTR}, **evaluation}


def has_evaluation(trial: optuna.trial.FrozenTrial) -> bool:
    """True when the trial recorded an evaluation (it completed its measurement)."""
    return "realistic" in trial_attrs(trial)


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
    exposure: dict[str, Any] | None = None     # Exposure.to_dict(); None in studies stored before it
    false_exposure: dict[str, Any] | None = None  # the same count on the evaluation non-members
    dp_bounds: dict[str, Any] | None = None    # DPBounds.to_dict() of a DP trial
    sample_rate: float | None = None
    steps: int | None = None
    max_exposed: int | None = None             # the adequacy bound on exposed members, if any

    @property
    def exposed(self) -> int | None:
        """Members whose posterior exceeds the bound (``None`` when not recorded)."""
        return None if self.exposure is None else int(self.exposure["count"])

    @property
    def exposure_ok(self) -> bool:
        """Whether the optional ``adequacy.max_exposed`` bound holds (always, without one).

        The PPV side of :func:`objectives.is_adequate` is the stored verdict;
        this is its exposure side (a study recorded before exposure was
        measured is judged on the PPV alone).
        """
        if self.max_exposed is None or self.exposed is None:
            return True
        return is_adequate(risk=0.0, max_ppv=1.0, exposed=self.exposed, max_exposed=self.max_exposed)

    def adequate_in(self, view: str) -> bool:
        """Adequacy under the ``realistic`` or the ``worst_case`` view.

        Both views also require the optional bound on exposed members.
        """
        verdict = self.adequate if view == "realistic" else self.worst_case_adequate
        return verdict and self.exposure_ok


def record_from_trial(trial: optuna.trial.FrozenTrial, *, max_exposed: int | None = None) -> TrialRecord:
    """Flatten a completed trial's user attributes.

    ``max_exposed`` is the config's optional bound on exposed members
    (``adequacy.max_exposed``): :meth:`TrialRecord.adequate_in` applies it.
    """
    attrs = trial_attrs(trial)
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
        exposure=attrs.get("exposure"),
        false_exposure=attrs.get("false_exposure"),
        dp_bounds=attrs.get("dp_bounds"),
        sample_rate=attrs.get("sample_rate"),
        steps=attrs.get("steps"),
        max_exposed=max_exposed,
    )


def completed_records(study: optuna.Study, *, max_exposed: int | None = None) -> list[TrialRecord]:
    """Records of every completed trial, in trial-number order (see :func:`record_from_trial`)."""
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [
        record_from_trial(t, max_exposed=max_exposed)
        for t in sorted(finished, key=lambda t: t.number)
        if has_evaluation(t)
    ]
