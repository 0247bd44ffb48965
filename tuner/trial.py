"""One evaluation of one defense: train the target and the attacker's reference
models with the same recipe, attack the target, score utility and risk.

This is the only place where training (``defenses``) meets scoring
(``objectives``). Everything that does not depend on the defense (the data
roles, the attacks, the utility metric) is built once per study in a
:class:`TrialContext`; :func:`evaluate_defense` does the per-defense work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from defenses import (
    DefenseConfig,
    EpochLog,
    TrainedModel,
    TrainingRecipe,
    predict_logits,
    train_model,
)
from objectives import (
    Attack,
    AttackScores,
    DPBounds,
    Exposure,
    dp_bounds,
    exposed_members,
    Observations,
    RealisticRisk,
    UtilityMetric,
    WorstCaseRisk,
    make_attack,
    realistic_risk,
    restrict_to_access,
    worst_case_risk,
)
from tuner.config import RunConfig
from tuner.references import ReferenceTraining
from tuner.roles import DataRoles, RoleSplit
from tuner.user_code import build_target_model

WORST_CASE_FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares, built once per study."""

    config: RunConfig
    roles: DataRoles
    device: torch.device
    attacks: tuple[Attack, ...]
    utility: UtilityMetric

    @property
    def recipe(self) -> TrainingRecipe:
        return self.config.recipe

    @property
    def n_reference_models(self) -> int:
        """K, or 0 when no selected attack needs reference models."""
        if any(attack.uses_reference_models for attack in self.attacks):
            return self.config.threat_model.reference_models
        return 0


def build_context(config: RunConfig, roles: DataRoles, device: torch.device, utility: UtilityMetric) -> TrialContext:
    """Instantiate the configured attacks once for the whole study."""
    attacks = tuple(make_attack(name) for name in config.threat_model.attacks)
    return TrialContext(config=config, roles=roles, device=device, attacks=attacks, utility=utility)


@dataclass
class Evaluation:
    """Everything measured for one trained target (one seed) of one defense."""

    defense: DefenseConfig
    seed: int
    utility_validation: float
    utility_validation_interval: tuple[float, float]
    utility_test: float
    utility_test_interval: tuple[float, float]
    scores: dict[str, AttackScores]
    realistic: RealisticRisk
    worst_case: WorstCaseRisk
    epochs_run: int
    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    history: list[EpochLog] = field(default_factory=list)
    exposure: Exposure | None = None        # members whose posterior exceeds max_ppv at π
    false_exposure: Exposure | None = None  # evaluation non-members above the same bound (false alarms)
    dp_bounds: DPBounds | None = None       # the (ε, δ) limits beside the measured figures (DP only)
    sample_rate: float | None = None        # Poisson rate q of the DP steps (DP only)
    steps: int | None = None                # noisy steps taken (DP only)
    target: TrainedModel | None = field(default=None, repr=False)  # the trained target (audit)


def trial_seed(study_seed: int, trial_number: int, replicate: int = 0) -> int:
    """A distinct, reproducible seed per (study, trial, confirmation replicate)."""
    return int(np.random.SeedSequence([study_seed, trial_number, replicate]).generate_state(1)[0])


def evaluate_defense(
    context: TrialContext,
    defense: DefenseConfig,
    *,
    seed: int,
    on_epoch_end: Callable[[EpochLog], None] | None = None,
    references: ReferenceTraining | None = None,
) -> Evaluation:
    """Train the target and the attacker's reference models, then measure.

    The reference models train on as many attacker-pool records as the
    target did, with the target's recipe and defense when the threat model
    says the attacker knows the recipe (Kerckhoffs), else undefended.
    ``references`` says where they train (the study's
    :class:`~tuner.references.ReferenceTraining`: with a helper process,
    beside the target); without it, here, after the target.
    """
    roles = context.roles
    attacker_defense = defense if context.config.threat_model.knows_recipe else DefenseConfig()
    if references is None:
        references = ReferenceTraining(context)
    elif references.context is not context:
        raise ValueError("references: a ReferenceTraining of another context (build it with this one)")
    pending = references.begin(attacker_defense, seed=seed)
    try:
        target = _train(context, defense, (roles.members.X, roles.members.y), seed=seed, on_epoch_end=on_epoch_end)
    except BaseException:
        pending.abandon()  # pruned or failed: nobody will read its reference models
        raise
    reference_models = pending.result()

    observed = {
        name: _observe(context, target, reference_models, split)
        for name, split in (
            ("members", roles.members),
            ("nonmembers", roles.nonmembers),
            ("calibration", roles.attacker_calibration),
            ("population", roles.attacker_population),
        )
    }
    scores = {
        attack.name: AttackScores(
            members=attack.score(observed["members"], observed["population"]),
            nonmembers=attack.score(observed["nonmembers"], observed["population"]),
            calibration=attack.score(observed["calibration"], observed["population"]),
        )
        for attack in context.attacks
    }
    val_logits = predict_logits(target.model, roles.validation.X, device=context.device)
    test_logits = predict_logits(target.model, roles.test.X, device=context.device)
    realistic = measure_realistic(context, [scores])
    worst_case = measure_worst_case(context, [scores])
    return Evaluation(
        defense=defense,
        seed=seed,
        utility_validation=context.utility.score(roles.validation.y, val_logits),
        utility_validation_interval=context.utility.interval(roles.validation.y, val_logits),
        utility_test=context.utility.score(roles.test.y, test_logits),
        utility_test_interval=context.utility.interval(roles.test.y, test_logits),
        scores=scores,
        realistic=realistic,
        worst_case=worst_case,
        epochs_run=target.epochs_run,
        epsilon=target.epsilon,
        delta=target.delta,
        noise_multiplier=target.noise_multiplier,
        history=list(target.history),
        exposure=measure_exposure(context, observed["members"], observed["population"], rows=roles.members.rows),
        false_exposure=measure_exposure(
            context, observed["nonmembers"], observed["population"], rows=roles.nonmembers.rows
        ),
        dp_bounds=measure_dp_bounds(
            context, realistic=realistic, worst_case=worst_case, epsilon=target.epsilon, delta=target.delta
        ),
        sample_rate=target.sample_rate,
        steps=target.steps,
        target=target,
    )


def train_shadow(
    context: TrialContext, defense: DefenseConfig, data: tuple[np.ndarray, np.ndarray], *, seed: int
) -> TrainedModel:
    """One model trained on ``data`` with the study's recipe and ``defense`` (the audit's shadows)."""
    return _train(context, defense, data, seed=seed, track_epsilon=False)


def measure_exposure(
    context: TrialContext, records: Observations, population: Observations, *, rows: np.ndarray
) -> Exposure:
    """Records whose posterior at π exceeds ``max_ppv`` under an attack with a likelihood ratio.

    For the members this is who stays exposed; for the evaluation
    non-members the same count is the attacks' false alarms, the yardstick
    for the members' figure. ``rows`` are the records' row ids in the data set.
    """
    log_lrs = {}
    for attack in context.attacks:
        log_lr = attack.log_likelihood_ratio(records, population)
        if log_lr is not None:
            log_lrs[attack.name] = log_lr
    return exposed_members(
        log_lrs,
        rows=rows,
        prior=context.config.threat_model.membership_prior,
        max_ppv=context.config.adequacy.max_ppv,
    )


def measure_dp_bounds(
    context: TrialContext,
    *,
    realistic: RealisticRisk,
    worst_case: WorstCaseRisk,
    epsilon: float | None,
    delta: float | None,
) -> DPBounds | None:
    """The (ε, δ) limits beside the measured figures; ``None`` for a run without DP."""
    if epsilon is None or delta is None:
        return None
    return dp_bounds(
        points=realistic.points,
        oracle_tpr=worst_case.tpr_at_fpr,
        epsilon=epsilon,
        delta=delta,
        prior=context.config.threat_model.membership_prior,
    )


def measure_realistic(context: TrialContext, runs: list[dict[str, AttackScores]]) -> RealisticRisk:
    """Realistic risk of one or several (pooled) trained targets."""
    threat = context.config.threat_model
    return realistic_risk(
        runs,
        prior=threat.membership_prior,
        calibration_fprs=threat.calibration_fprs,
        max_ppv=context.config.adequacy.max_ppv,
        min_expected_false_positives=threat.min_expected_false_positives,
    )


def measure_worst_case(context: TrialContext, runs: list[dict[str, AttackScores]]) -> WorstCaseRisk:
    """Worst-case (oracle, prior 0.5) risk of one or several pooled targets."""
    threat = context.config.threat_model
    return worst_case_risk(
        runs,
        fprs=WORST_CASE_FPRS,
        calibration_fprs=threat.calibration_fprs,
        max_ppv=context.config.adequacy.max_ppv,
        min_expected_false_positives=threat.min_expected_false_positives,
    )


def _train(
    context: TrialContext,
    defense: DefenseConfig,
    data: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    validation: RoleSplit | None = None,
    on_epoch_end: Callable[[EpochLog], None] | None = None,
    track_epsilon: bool = True,
) -> TrainedModel:
    roles, recipe = context.roles, context.recipe
    validation = validation if validation is not None else roles.validation
    utility = context.utility
    return train_model(
        lambda: build_target_model(context.config, roles, dropout=defense.dropout),
        defense,
        recipe,
        data,
        seed=seed,
        device=context.device,
        validation=(validation.X, validation.y),
        validation_score=lambda logits, labels: utility.score(labels, logits),
        on_epoch_end=on_epoch_end,
        track_epsilon=track_epsilon,
    )


def _observe(
    context: TrialContext, target: TrainedModel, references: list[TrainedModel], split: RoleSplit
) -> Observations:
    device = context.device
    target_logits = predict_logits(target.model, split.X, device=device)
    if references:
        reference_logits = np.stack([predict_logits(r.model, split.X, device=device) for r in references])
    else:
        reference_logits = np.zeros((0, *target_logits.shape))
    observations = Observations(labels=split.y, target_logits=target_logits, reference_logits=reference_logits)
    return restrict_to_access(observations, context.config.threat_model.access)
