"""The Optuna study: storage, sampler, the baseline first, and the trial loop.

Side effects (progress lines, TensorBoard) are observers passed in by the
caller, so the loop itself only trains, measures and records.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Protocol, Sequence

import optuna

from defenses import DefenseConfig, EpochLog
from objectives import adequacy_constraint, exposure_constraint, weighted_objective
from tuner.config import RunConfig
from tuner.figures import ROC_ATTR, roc_summary
from tuner.errors import ConfigError
from tuner.records import BASELINE_ATTR, evaluation_attrs
from tuner.search_space import SearchSpace
from tuner.trial import Evaluation, TrialContext, evaluate_defense, trial_seed

# risk − bound, set once per completed trial (Optuna refuses to overwrite it);
# its samplers treat ≤ 0 as feasible and rank pruned trials by their curves.
ADEQUACY_CONSTRAINT = "adequacy"
EXPOSURE_CONSTRAINT = "exposure"  # exposed members − adequacy.max_exposed (only with that bound)


class TrialObserver(Protocol):
    """Receives progress events from the trial loop (progress, TensorBoard)."""

    def trial_started(self, number: int, defense: DefenseConfig) -> None: ...

    def epoch_finished(self, number: int, log: EpochLog) -> None: ...

    def trial_finished(self, trial: optuna.trial.FrozenTrial, evaluation: Evaluation | None) -> None: ...

    # Optional: ``study_updated(study)`` is called after every observer's
    # ``trial_finished``, with the study, for views of all trials (figures).


def open_study(config: RunConfig, storage: str, *, data_fingerprint: str) -> optuna.Study:
    """Create the study or continue the one already in ``storage``.

    A study that was started on other data is refused (resuming it would mix
    trials measured on different people), with a message saying how to start
    a new one.
    """
    directions = ["maximize", "minimize"] if config.objective.mode == "pareto" else ["maximize"]
    study = optuna.create_study(
        storage=_rdb_storage(storage),
        study_name=config.study.name,
        directions=directions,
        load_if_exists=True,
        sampler=_sampler(config, n_existing=0),
        pruner=_pruner(config),
    )
    stored = study.user_attrs.get("data_fingerprint")
    if stored is None:
        study.set_user_attr("data_fingerprint", data_fingerprint)
    elif stored != data_fingerprint:
        raise ConfigError(
            f"study.name: the study {config.study.name!r} in {storage} was run on other data "
            f"(fingerprint {stored[:12]} vs {data_fingerprint[:12]}); choose another --out folder "
            "or study.name to start a new study, nothing was changed"
        )
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"objective.mode: the stored study {config.study.name!r} was run in another mode; "
            "choose another --out folder or study.name"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    # Reseed the sampler by how many trials exist, so a continued study explores anew.
    study.sampler = _sampler(config, n_existing=len(study.trials))
    return study


def ensure_baseline(study: optuna.Study, space: SearchSpace) -> None:
    """Enqueue the undefended baseline unless the study already has it."""
    if any(t.user_attrs.get(BASELINE_ATTR) for t in study.get_trials(deepcopy=False)):
        return
    space.enqueue_baseline(study)


def run_trials(
    study: optuna.Study,
    context: TrialContext,
    space: SearchSpace,
    *,
    n_trials: int,
    observers: Sequence[TrialObserver] = (),
) -> None:
    """Run ``n_trials`` more trials of ``study`` (the baseline first, if new).

    With a random search budget (``study.search_budget``) there is no
    baseline: an undefended run trains on the members without a guarantee,
    and the search must consist of DP runs only for its ε to be finite.
    """
    if not context.config.study.search_budget.is_random:
        ensure_baseline(study, space)
    loop = _TrialLoop(context, space, observers)
    study.optimize(loop, n_trials=n_trials, callbacks=[loop.after_trial], gc_after_trial=False)


def risk_view(config: RunConfig, evaluation: Evaluation) -> tuple[float, float]:
    """(risk, advantage) of an evaluation under the configured risk view."""
    if config.objective.risk == "worst_case":
        # At prior 0.5 the advantage (PPV−π)/(1−π) is 2·PPV − 1.
        return evaluation.worst_case.risk, 2.0 * evaluation.worst_case.risk - 1.0
    return evaluation.realistic.risk, evaluation.realistic.advantage


class _TrialLoop:
    """The Optuna objective (``__call__``) and its after-trial callback.

    The evaluation of a trial is handed from the objective to the callback
    (which tells the observers) through ``_finished``, keyed by trial number.
    """

    def __init__(self, context: TrialContext, space: SearchSpace, observers: Sequence[TrialObserver]):
        self.context = context
        self.space = space
        self.observers = tuple(observers)
        config = context.config
        self.prune = (
            config.study.pruning
            and config.objective.mode == "weighted"
            and not config.study.search_budget.is_random  # every run of a random budget runs to the end
        )
        self._finished: dict[int, Evaluation] = {}

    def __call__(self, trial: optuna.Trial) -> Any:
        config = self.context.config
        defense = self.space.suggest(trial)
        for obs in self.observers:
            obs.trial_started(trial.number, defense)
        started = time.perf_counter()
        evaluation = evaluate_defense(
            self.context,
            defense,
            seed=trial_seed(config.study.seed, trial.number),
            on_epoch_end=lambda log: self._epoch_finished(trial, log),
        )
        for key, value in evaluation_attrs(evaluation).items():
            trial.set_user_attr(key, value)
        trial.set_user_attr(ROC_ATTR, roc_summary(evaluation.scores))  # for the study figures
        trial.set_user_attr("seconds", time.perf_counter() - started)
        risk, advantage = risk_view(config, evaluation)
        trial.set_constraint(ADEQUACY_CONSTRAINT, adequacy_constraint(risk=risk, max_ppv=config.adequacy.max_ppv))
        if config.adequacy.max_exposed is not None and evaluation.exposure is not None:
            trial.set_constraint(
                EXPOSURE_CONSTRAINT,
                exposure_constraint(exposed=evaluation.exposure.count, max_exposed=config.adequacy.max_exposed),
            )
        self._finished[trial.number] = evaluation
        if config.objective.mode == "pareto":
            return evaluation.utility_validation, risk
        return weighted_objective(
            utility=evaluation.utility_validation, advantage=advantage, risk_weight=config.objective.risk_weight
        )

    def after_trial(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        evaluation = self._finished.pop(frozen.number, None)
        for obs in self.observers:
            obs.trial_finished(frozen, evaluation)
        for obs in self.observers:  # optional hook: observers that redraw study-level views
            study_updated = getattr(obs, "study_updated", None)
            if study_updated is not None:
                study_updated(study)

    def _epoch_finished(self, trial: optuna.Trial, log: EpochLog) -> None:
        for obs in self.observers:
            obs.epoch_finished(trial.number, log)
        if self.prune and log.validation_utility is not None and not trial.user_attrs.get(BASELINE_ATTR):
            trial.report(log.validation_utility, log.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation utility {log.validation_utility:.4f} at epoch {log.epoch}")


def _sampler(config: RunConfig, *, n_existing: int) -> optuna.samplers.BaseSampler:
    seed = config.study.seed * 1_000_003 + n_existing
    if config.study.search_budget.is_random:
        # Papernot & Steinke's bound is for independent runs whose settings do not depend on the
        # data: random search, not TPE's or NSGA-II's adaptive choices.
        return optuna.samplers.RandomSampler(seed=seed)
    if config.objective.mode == "pareto":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)


def _pruner(config: RunConfig) -> optuna.pruners.BasePruner:
    if not config.study.pruning or config.objective.mode == "pareto" or config.study.search_budget.is_random:
        return optuna.pruners.NopPruner()
    # Prune only the bottom quarter, and only after a third of the epochs: early
    # epochs of regularized or DP runs lag behind without being hopeless.
    return optuna.pruners.PercentilePruner(
        75.0, n_startup_trials=8, n_warmup_steps=max(1, config.recipe.epochs // 3)
    )


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    # Heartbeats let a later run (or another worker) mark a trial whose
    # process was killed as failed instead of leaving it RUNNING forever.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)
