"""The main job, start to finish, in the order the data flows:

config → data roles → (per trial: defense → training → attacks → risk →
objective) → study → recommendation (confirmed) → outputs.

Everything that can be wrong with the config or the data is checked in
:func:`prepare` before the run folder is touched, so a bad input never harms
a study or outputs that already exist.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import optuna

import torch

from defenses import cpu_threads, resolve_device
from objectives import resolution_warning, utility_metric
from tuner.config import RunConfig
from tuner.confirmation import Confirmation, confirm
from tuner.data import load_data
from tuner.errors import ConfigError, DataError
from tuner.records import TrialRecord, completed_records
from tuner.references import ReferenceTraining, resolve_processes
from tuner.roles import DataRoles, split_roles
from tuner.run_folder import RunFolder
from tuner.search_space import SearchSpace
from tuner.privacy_cost import PrivacyCost, privacy_cost
from tuner.search_budget import BUDGET_ATTR
from tuner.selection import least_risky, rank_candidates
from tuner.study import SharedStudy, TrialObserver, open_study, run_trials
from tuner.trial import TrialContext, build_context
from tuner.user_code import build_target_model, check_target_model


@dataclass(frozen=True)
class Prepared:
    """A validated config with its data roles and trial context, nothing written yet."""

    config: RunConfig
    roles: DataRoles
    context: TrialContext
    space: SearchSpace
    data_name: str
    references: ReferenceTraining    # where the reference models train (training.processes)
    warnings: tuple[str, ...] = ()   # e.g. the lowest calibration FPR is too small for the data
    threads: int | None = None       # torch intra-op threads on the CPU (None on CUDA)


@dataclass
class Recommendation:
    """The outcome of choosing and confirming among a study's trials."""

    records: list[TrialRecord]
    chosen: TrialRecord | None
    confirmation: Confirmation | None
    rejected: list[tuple[TrialRecord, Confirmation]] = field(default_factory=list)
    worst_case_choice: TrialRecord | None = None
    least_risky: TrialRecord | None = None
    privacy_cost: PrivacyCost | None = None     # which ε holds for what (DP recommendations)
    budget: dict | None = None                  # the random search budget's record, if any

    @property
    def baseline(self) -> TrialRecord | None:
        return next((r for r in self.records if r.is_baseline), None)

    @property
    def no_defense_needed(self) -> bool:
        return self.chosen is not None and self.chosen.defense.is_undefended


def prepare(config: RunConfig) -> Prepared:
    """Load and split the data and check the config against it (raises ConfigError / DataError)."""
    data = load_data(config.data, base_dir=config.source.parent if config.source else None)
    roles = split_roles(data, config.data.roles, config.data.pool, seed=config.study.seed)
    metric = utility_metric(config.objective.utility)
    if metric.requires_binary and roles.n_classes != 2:
        raise ConfigError(
            f"objective.utility: must be one of ['accuracy', 'balanced_accuracy'] for a data set with "
            f"{roles.n_classes} classes, but got {config.objective.utility!r} (it needs a binary task)"
        )
    _check_resolvable(config, roles)
    check_target_model(config, roles)
    try:
        device = resolve_device(config.device)
    except ValueError as err:
        raise ConfigError(f"training.device: {err}") from None
    threads = _use_cpu_threads(config, roles, device)
    processes = resolve_processes(config.processes, device=device, threads=threads)
    context = build_context(config, roles, device, metric)
    threat = config.threat_model
    warning = resolution_warning(
        n_nonmembers=len(roles.nonmembers),
        calibration_fprs=threat.calibration_fprs,
        min_expected_false_positives=threat.min_expected_false_positives,
    )
    return Prepared(
        config=config,
        roles=roles,
        context=context,
        space=SearchSpace(config.search_space),
        data_name=data.name,
        references=ReferenceTraining(context, processes),
        warnings=() if warning is None else (warning,),
        threads=threads,
    )


def open_run_study(prepared: Prepared, folder: RunFolder, *, storage: str | None = None) -> SharedStudy:
    """Create the run folder and open (or join) the study in its storage.

    The storage is ``storage``, else ``study.storage``, else the SQLite file
    in the run folder. A folder this call created is removed again when
    the study is refused, so a refused worker leaves nothing behind.
    """
    created = not folder.root.exists()
    folder.create()
    try:
        return open_study(
            prepared.config,
            storage or prepared.config.study.storage or folder.default_storage,
            data_fingerprint=prepared.roles.fingerprint,
        )
    except ConfigError:
        if created:
            shutil.rmtree(folder.root, ignore_errors=True)
        raise


def run_study(
    prepared: Prepared,
    shared: SharedStudy,
    *,
    target: int,
    observers: Sequence[TrialObserver] = (),
) -> optuna.Study:
    """Run the study until it holds ``target`` trials, sharing the work with other workers.

    ``target`` is :meth:`SharedStudy.target` of the requested count: under a
    random search budget (``study.search_budget``) it is the number of runs
    drawn for the study, whatever was requested. With ``training.processes``
    2 the reference-model helper is forked here, before the trial loop starts
    threads (heartbeats, TensorBoard writers).
    """
    prepared.references.start()
    run_trials(
        shared, prepared.context, prepared.space, target=target, observers=observers, references=prepared.references
    )
    return shared.study


def recommend(prepared: Prepared, study: optuna.Study) -> Recommendation:
    """Choose the weakest adequate trial and confirm it on fresh seeds.

    Candidates are tried in recommendation order until one stays adequate on
    the pooled evaluation of its retrains.
    """
    config = prepared.config
    view = config.objective.risk
    records = completed_records(study, max_exposed=config.adequacy.max_exposed)
    outcome = Recommendation(
        records=records,
        chosen=None,
        confirmation=None,
        worst_case_choice=next(iter(rank_candidates(records, view="worst_case")), None),
        least_risky=least_risky(records),
        budget=study.user_attrs.get(BUDGET_ATTR),
    )
    for candidate in rank_candidates(records, view=view):
        verdict = confirm(
            prepared.context,
            candidate,
            study=study,
            replicates=config.confirmation.seeds,
            view=view,
            references=prepared.references,
        )
        if verdict.adequate:
            outcome.chosen, outcome.confirmation = candidate, verdict
            break
        outcome.rejected.append((candidate, verdict))
    if outcome.chosen is not None:
        outcome.privacy_cost = privacy_cost(
            study,
            config,
            chosen=outcome.chosen,
            confirmed=[candidate for candidate, _ in outcome.rejected] + [outcome.chosen],
            n_members=len(prepared.roles.members),
            budget=outcome.budget,
        )
    return outcome


def _use_cpu_threads(config: RunConfig, roles: DataRoles, device: torch.device) -> int | None:
    """Set torch's intra-op threads for this process from ``training.threads`` (CPU only)."""
    if device.type != "cpu":
        return None
    model = build_target_model(config, roles, dropout=0.0)
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    threads = cpu_threads(config.threads, n_parameters=n_parameters)
    torch.set_num_threads(threads)
    return threads


def _check_resolvable(config: RunConfig, roles: DataRoles) -> None:
    threat = config.threat_model
    n = len(roles.nonmembers)
    if any(n * alpha >= threat.min_expected_false_positives for alpha in threat.calibration_fprs):
        return
    needed = math.ceil(threat.min_expected_false_positives / max(threat.calibration_fprs))
    raise DataError(
        f"threat_model.calibration_fprs: none of {list(threat.calibration_fprs)} can be observed with "
        f"{n} evaluation non-members (each needs n·α ≥ {threat.min_expected_false_positives:g}); "
        f"use a larger calibration FPR, or raise data.roles.nonmembers to give at least {needed} non-members"
    )
