"""The Optuna study: sampler, pruner, claiming trials among workers, the trial loop.

A study may be run by several ``privtune tune`` workers at once (any Optuna
RDB storage; see :mod:`tuner.storage`). Each trial is claimed under the
study's lock, run with a heartbeat, and told to the study; a worker killed
mid-trial leaves a trial that the next claim marks failed and runs again.

Side effects (progress lines, TensorBoard) are observers passed in by the
caller, so the loop itself only trains, measures and records.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from typing import Any, ContextManager, Iterator, Protocol, Sequence

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from defenses import DefenseConfig, EpochLog
from objectives import adequacy_constraint, exposure_constraint, weighted_objective
from tuner.config import RunConfig, config_to_dict
from tuner.figures import ROC_ATTR, roc_summary
from tuner.errors import ConfigError
from tuner.liveness import WORKER_ATTR, fail_dead_trials, this_worker
from tuner.records import BASELINE_ATTR, EVALUATION_ATTR, evaluation_attrs
from tuner.search_budget import planned_runs
from tuner.search_space import SearchSpace
from tuner.storage import HEARTBEAT_INTERVAL_S, open_storage, shown_url, study_lock
from tuner.references import ReferenceTraining
from tuner.trial import Evaluation, TrialContext, evaluate_defense, trial_seed

# risk − bound, set once per completed trial (Optuna refuses to overwrite it);
# its samplers treat ≤ 0 as feasible and rank pruned trials by their curves.
ADEQUACY_CONSTRAINT = "adequacy"
EXPOSURE_CONSTRAINT = "exposure"  # exposed members − adequacy.max_exposed (only with that bound)
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TrialObserver(Protocol):
    """Receives progress events from the trial loop (progress, TensorBoard)."""

    def trial_started(self, number: int, defense: DefenseConfig) -> None: ...

    def epoch_finished(self, number: int, log: EpochLog) -> None: ...

    def trial_finished(self, trial: optuna.trial.FrozenTrial, evaluation: Evaluation | None) -> None: ...

    # Optional: ``study_updated(study)`` is called after every observer's
    # ``trial_finished``, with the study, for views of all trials (figures);
    # ``trials_recovered(numbers)`` when this worker marked dead workers' trials failed.


class SharedStudy:
    """A study in its storage, shared by however many workers run it.

    Every trial is claimed inside the storage's lock (:func:`tuner.storage.study_lock`):
    the claim fails dead workers' trials, counts what the study already holds,
    enqueues the baseline if no live trial has it, and only then creates the
    trial. So workers on any number of machines together start exactly the
    requested number of trials, each number once, the baseline once.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage, config: RunConfig):
        self.study = study
        self.storage = storage
        self.config = config
        self.recovered: list[int] = []  # trials of dead workers this worker marked failed, not yet reported

    def close(self) -> None:
        """Close the storage's database connections (SQLite: checkpoints and removes its write-ahead log).

        The study stays readable: a later query opens a new connection.
        """
        self.storage.engine.dispose()

    def fail_dead_trials(self) -> None:
        """Mark failed the RUNNING trials whose worker is gone (call under the claim lock)."""
        self.recovered.extend(fail_dead_trials(self.study))

    @property
    def random_budget(self) -> bool:
        return self.config.study.search_budget.is_random

    def target(self, requested: int) -> int:
        """Trials the study should hold: ``requested``, or the runs drawn for a random budget."""
        planned = planned_runs(self.study, self.config)
        return requested if planned is None else planned

    def finished(self) -> int:
        """Trials that count toward the target and are done (complete or pruned)."""
        return len(self.study.get_trials(deepcopy=False, states=_FINISHED))

    def running(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def lock(self, purpose: str = "claim") -> ContextManager[None]:
        return study_lock(self.storage, self.study.study_name, purpose)

    def claim(self, space: SearchSpace, *, target: int) -> optuna.Trial | None:
        """Start this worker's next trial, or ``None`` when the study needs no more.

        Failed trials do not count (their slot is run again), except under a
        random search budget, where every run that trained on the members
        counts toward the drawn number of runs.
        """
        with self.lock("claim"):
            self.fail_dead_trials()
            counted = (*_FINISHED, TrialState.RUNNING) + ((TrialState.FAIL,) if self.random_budget else ())
            trials = self.study.get_trials(deepcopy=False)
            if sum(t.state in counted for t in trials) >= target:
                return None
            if not self.random_budget and not any(
                t.user_attrs.get(BASELINE_ATTR) and t.state != TrialState.FAIL for t in trials
            ):
                space.enqueue_baseline(self.study)  # popped by the ask() below
            # Reseed by the trial count: reproducible for one worker, distinct for each claim.
            self.study.sampler = _sampler(self.config, n_existing=len(trials))
            with warnings.catch_warnings():  # privtune runs the heartbeat itself (:func:`heartbeat`)
                warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used")
                trial = self.study.ask()
            self.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, this_worker())
            return trial


SETTINGS_ATTR = "settings"  # study user attribute: the config settings its trials were measured with
# Config keys that may differ between the runs and workers of one study: where things are
# (paths, storage, devices), how many trials, and what happens after the trials.
_FREE_SETTINGS = {
    "study": ("name", "storage", "trials"),
    "data": ("path", "test_path", "python_path"),
    "model": ("python_path",),
    "training": ("device", "threads", "processes"),
    "confirmation": None,
    "audit": None,
}


def study_settings(config: RunConfig) -> dict[str, Any]:
    """The config settings that decide what a study's trials measure, JSON-ready.

    Everything but what :data:`_FREE_SETTINGS` lists: the data (besides its
    fingerprint) and roles, the model and recipe, the threat model, the
    adequacy bound, the objective, the search space and the study's seed,
    pruning and search budget. A trial's figures are only comparable with
    trials measured under the same settings.
    """
    settings = config_to_dict(config)
    for section, keys in _FREE_SETTINGS.items():
        if keys is None:
            settings.pop(section, None)
        else:
            for key in keys:
                settings.get(section, {}).pop(key, None)
    return json.loads(json.dumps(settings))  # tuples as lists, as the storage gives them back


def settings_differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: stored → current`` for every dotted key whose value differs, sorted.

    Example:
        >>> settings_differences({"training": {"epochs": 5, "batch_size": 64}},
        ...                      {"training": {"epochs": 6, "batch_size": 64}})
        ['training.epochs: 5 → 6']
    """
    lines = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += settings_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            lines.append(f"{prefix}{key}: {json.dumps(old)} → {json.dumps(new)}")
    return lines


def open_study(config: RunConfig, url: str, *, data_fingerprint: str) -> SharedStudy:
    """Create the study or continue the one already in the storage at ``url``.

    Several workers may call this at once: Optuna's ``load_if_exists`` makes
    exactly one of them create the study. A study that was started on other
    data, or with other settings (:func:`study_settings`), is refused:
    resuming it would mix trials measured on different people or under a
    different recipe, threat model or bound. The message names what differs
    and how to start a new study; nothing is changed.
    """
    directions = ["maximize", "minimize"] if config.objective.mode == "pareto" else ["maximize"]
    try:
        storage = open_storage(url)
        study = optuna.create_study(
            storage=storage,
            study_name=config.study.name,
            directions=directions,
            load_if_exists=True,
            sampler=_sampler(config, n_existing=0),
            pruner=_pruner(config),
        )
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        raise ConfigError(
            f"--storage / study.storage: cannot open the study storage {shown_url(url)!r}: {str(err).splitlines()[0]}; "
            "check that the database server is running and the URL's user, password and database exist"
        ) from None
    settings = study_settings(config)
    with study_lock(storage, config.study.name, "claim"):
        attrs = study.user_attrs
        stored = attrs.get("data_fingerprint")
        if stored is None:
            study.set_user_attr("data_fingerprint", data_fingerprint)
            stored = data_fingerprint
        stored_settings = attrs.get(SETTINGS_ATTR)
        if stored_settings is None:  # a new study (or one from before settings were recorded)
            study.set_user_attr(SETTINGS_ATTR, settings)
            stored_settings = settings
    if stored != data_fingerprint:
        raise ConfigError(
            f"study.name: the study {config.study.name!r} in {shown_url(url)} was run on other data "
            f"(fingerprint {stored[:12]} vs {data_fingerprint[:12]}); choose another --out folder "
            "or study.name to start a new study, nothing was changed"
        )
    changed = settings_differences(stored_settings, settings)
    if changed:
        shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ConfigError(
            f"the study {config.study.name!r} in {shown_url(url)} was run with other settings ({shown}); "
            "its trials would not be comparable with new ones. Use the study's settings (its run folder's "
            "config.yaml) to continue it, or start a new study under another study.name (or, for the run "
            "folder's own study.db, another --out folder); nothing was changed"
        )
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"objective.mode: the stored study {config.study.name!r} was run in another mode; "
            "choose another --out folder or study.name"
        )
    shared = SharedStudy(study, storage, config)
    with shared.lock("claim"):
        shared.fail_dead_trials()
    return shared


def run_trials(
    shared: SharedStudy,
    context: TrialContext,
    space: SearchSpace,
    *,
    target: int,
    observers: Sequence[TrialObserver] = (),
    poll_seconds: float = 5.0,
    references: ReferenceTraining | None = None,
) -> None:
    """Run trials until the study holds ``target`` of them, with any other workers.

    ``references``: where each trial's reference models train (see
    :func:`tuner.trial.evaluate_defense`).

    When no trial is left to claim but other workers still run some, this
    worker waits for them (and takes over the slot of one that dies), so it
    returns only when the study is complete.
    """
    loop = _TrialLoop(context, space, observers, references)
    while True:
        trial = shared.claim(space, target=target)
        if shared.recovered:
            loop.trials_recovered(shared.recovered)
            shared.recovered = []
        if trial is not None:
            loop.run(shared, trial)
        elif shared.running():
            time.sleep(poll_seconds)
        else:
            return


def risk_view(config: RunConfig, evaluation: Evaluation) -> tuple[float, float]:
    """(risk, advantage) of an evaluation under the configured risk view."""
    if config.objective.risk == "worst_case":
        # At prior 0.5 the advantage (PPV−π)/(1−π) is 2·PPV − 1.
        return evaluation.worst_case.risk, 2.0 * evaluation.worst_case.risk - 1.0
    return evaluation.realistic.risk, evaluation.realistic.advantage


class _TrialLoop:
    """The Optuna objective (``__call__``) and its after-trial callback.

    The evaluation of a trial is handed from the objective to the
    after-trial step (which tells the observers) through ``_finished``,
    keyed by trial number.
    """

    def __init__(
        self,
        context: TrialContext,
        space: SearchSpace,
        observers: Sequence[TrialObserver],
        references: ReferenceTraining | None = None,
    ):
        self.context = context
        self.references = references
        self.space = space
        self.observers = tuple(observers)
        config = context.config
        self.prune = (
            config.study.pruning
            and config.objective.mode == "weighted"
            and not config.study.search_budget.is_random  # every run of a random budget runs to the end
        )
        self.pruning_epochs = pruning_epochs(config.recipe.epochs)
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
            references=self.references,
        )
        trial.set_user_attr(
            EVALUATION_ATTR,
            {
                **evaluation_attrs(evaluation),
                ROC_ATTR: roc_summary(evaluation.scores),  # for the study figures
                "seconds": time.perf_counter() - started,
            },
        )
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

    def run(self, shared: SharedStudy, trial: optuna.Trial) -> None:
        """Run one claimed trial with a heartbeat, record its outcome, tell the observers.

        Pruning marks it PRUNED; any exception (Ctrl-C included) marks it
        FAILED, so its slot is run again, and propagates.
        """
        study = shared.study
        with heartbeat(shared.storage, trial._trial_id):
            try:
                value = self(trial)
            except optuna.TrialPruned:
                frozen = study.tell(trial, state=TrialState.PRUNED)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                frozen = study.tell(trial, value)
        self.after_trial(study, frozen)

    def trials_recovered(self, numbers: Sequence[int]) -> None:
        for obs in self.observers:  # optional hook
            recovered = getattr(obs, "trials_recovered", None)
            if recovered is not None:
                recovered(numbers)

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
        if (
            self.prune
            and log.validation_utility is not None
            and log.epoch in self.pruning_epochs
            and not trial.user_attrs.get(BASELINE_ATTR)
        ):
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


def pruning_epochs(epochs: int) -> frozenset[int]:
    """The epochs at which a trial reports to the pruner and may be pruned.

    From a third of the epochs on (early epochs of regularized or DP runs lag
    behind without being hopeless), about ten checks per run: each report is
    a storage write and each check reads every trial, which on a small model
    costs more than the epoch itself.
    """
    warmup, interval = _pruning_schedule(epochs)
    return frozenset(range(warmup, epochs + 1, interval))


def _pruning_schedule(epochs: int) -> tuple[int, int]:
    """(warm-up epochs, epochs between checks)."""
    return max(1, epochs // 3), max(1, epochs // 10)


def _pruner(config: RunConfig) -> optuna.pruners.BasePruner:
    if not config.study.pruning or config.objective.mode == "pareto" or config.study.search_budget.is_random:
        return optuna.pruners.NopPruner()
    # Prune only the bottom quarter, at the epochs of :func:`pruning_epochs`.
    warmup, interval = _pruning_schedule(config.recipe.epochs)
    return optuna.pruners.PercentilePruner(
        75.0, n_startup_trials=8, n_warmup_steps=warmup, interval_steps=interval
    )


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.RDBStorage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every ``HEARTBEAT_INTERVAL_S`` while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(HEARTBEAT_INTERVAL_S):
                return

    thread = threading.Thread(target=beat, name=f"privtune-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
