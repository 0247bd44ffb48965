"""The privacy cost of tuning itself: which ε holds for what.

A DP-SGD run's ε (what Opacus reports, per trial) bounds what *that one
model* reveals about its training records. The search did not train one
model: every trial, and every confirmation retrain, trained on the same
members, and which settings came out on top depends on all of them.
Choosing settings on the same people's data leaks too, even when the final
model is retrained once afterwards. privtune therefore reports three
figures (all with the δ of the recommended run, by the RDP accountant of
Google's ``dp_accounting``):

* **per run**: the recommended settings' ε for one training run — what the
  exported model carries if the settings had been chosen without these
  members' data;
* **the search**: the whole tuning procedure up to its output:
  - with a random search budget (``study.search_budget``: Poisson or
    truncated negative binomial number of runs, settings drawn at random),
    Papernot & Steinke's bound for releasing the best of a random number
    of DP runs (ICLR 2022; Theorem 2 for the truncated negative binomial,
    Theorem 6 for Poisson), as ``dp_accounting.RepeatAndSelectDpEvent``;
  - with a fixed number of runs, the adaptive composition of every run's
    RDP (a valid but much larger bound: the costs add up);
  - infinite when any trial trained on the members without DP (the
    undefended baseline always does, in a search that may switch DP off);
  plus the confirmation retrains (more DP runs on the same members,
  composed);
* **search + final run**: the above composed with one more run of the
  recommended settings, the model a user retrains on the same members.

Different trials used different noise multipliers σ. Papernot & Steinke's
theorem is for repeated runs of one algorithm; a run whose σ, sampling rate
and number of steps are drawn at random (independently of the data) is one
such algorithm, and its Rényi DP is at most that of the *dominating* run:
the smallest σ, the largest sampling rate q and the most steps among the
runs (RDP of the Poisson-subsampled Gaussian decreases in σ and grows with
q and with the number of steps). privtune bounds the search with that
dominating run. The bound covers the training runs; it does not cover the
attack evaluation, which reads the members directly to measure risk: treat
the risk figures and the report as the data owner's, not as part of the
released model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import dp_accounting
import optuna
from dp_accounting.rdp import RdpAccountant

from defenses import DefenseConfig
from defenses.epsilon import noise_multiplier_for_epsilon
from tuner.config import RunConfig
from tuner.records import TrialRecord, trial_attrs
from tuner.search_space import BASELINE_ATTR, SearchSpace


@dataclass(frozen=True)
class DPRun:
    """One DP training run, as an accountant sees it."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def event(self) -> dp_accounting.DpEvent:
        """The Poisson-subsampled Gaussian mechanism, composed over ``steps``."""
        return dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(self.sample_rate, dp_accounting.GaussianDpEvent(self.noise_multiplier)),
            self.steps,
        )


def dominating_run(runs: Iterable[DPRun]) -> DPRun:
    """The run whose RDP is at least every given run's: smallest σ, largest q, most steps.

    Example:
        >>> dominating_run([DPRun(2.0, 0.1, 100), DPRun(1.0, 0.05, 300)])
        DPRun(noise_multiplier=1.0, sample_rate=0.1, steps=300)
    """
    runs = list(runs)
    if not runs:
        raise ValueError("dominating_run needs at least one run")
    return DPRun(
        noise_multiplier=min(r.noise_multiplier for r in runs),
        sample_rate=max(r.sample_rate for r in runs),
        steps=max(r.steps for r in runs),
    )


def epsilon_of(event: dp_accounting.DpEvent, *, delta: float) -> float:
    """ε at ``delta`` of ``event`` by ``dp_accounting``'s RDP accountant."""
    accountant = RdpAccountant()
    with _quiet_accountant():
        accountant.compose(event)
        return float(accountant.get_epsilon(delta))


def repeat_and_select_epsilon(
    run: DPRun, *, delta: float, distribution: str, mean: float | None = None, eta: float | None = None
) -> float:
    """ε of running ``run`` a random number of times and releasing the best (Papernot & Steinke).

    Args:
        run: the (dominating) single run.
        delta: δ.
        distribution: ``"poisson"`` (then ``mean``) or ``"truncated_negative_binomial"``
            (then ``mean`` and ``eta``, the shape: 0 logarithmic, 1 geometric).
    """
    shape = math.inf if distribution == "poisson" else float(eta)  # type: ignore[arg-type]
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(run.event(), float(mean), shape)  # type: ignore[arg-type]
    return epsilon_of(event, delta=delta)


@dataclass(frozen=True)
class PrivacyCost:
    """The three ε of a DP recommendation (see the module docstring).

    ``search_epsilon`` and the figures built on it are ``math.inf`` when any
    trial trained on the members without DP (``non_dp_trials`` lists them).
    """

    delta: float
    per_run_epsilon: float | None
    per_run_epsilon_rdp: float
    search_basis: str                       # "repeat_and_select" | "composition" | "unbounded"
    search_epsilon: float                   # the search's runs only
    confirmation_runs: int
    search_and_confirmation_epsilon: float  # the search plus the confirmation retrains
    with_final_run_epsilon: float           # ... plus one more run of the recommended settings
    dp_trials: int
    non_dp_trials: tuple[int, ...]
    dominating: DPRun | None
    budget: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``inf`` as the string ``"inf"``, which YAML and JSON both keep)."""
        return {
            "delta": self.delta,
            "per_run_epsilon": self.per_run_epsilon,
            "per_run_epsilon_rdp": _finite(self.per_run_epsilon_rdp),
            "search_basis": self.search_basis,
            "search_epsilon": _finite(self.search_epsilon),
            "confirmation_runs": self.confirmation_runs,
            "search_and_confirmation_epsilon": _finite(self.search_and_confirmation_epsilon),
            "with_final_run_epsilon": _finite(self.with_final_run_epsilon),
            "dp_trials": self.dp_trials,
            "non_dp_trials": list(self.non_dp_trials),
            "dominating_run": None if self.dominating is None else asdict(self.dominating),
            "search_budget": self.budget,
        }


def privacy_cost(
    study: optuna.Study,
    config: RunConfig,
    *,
    chosen: TrialRecord,
    confirmed: Sequence[TrialRecord],
    n_members: int,
    budget: dict[str, Any] | None,
) -> PrivacyCost | None:
    """The privacy cost of the search that recommended ``chosen`` (``None`` if it is not DP).

    Args:
        study: the study (every trial that trained counts, pruned and failed ones too).
        config: the run's config.
        chosen: the recommended (confirmed) trial.
        confirmed: every candidate that went through confirmation retrains
            (the chosen one and any rejected before it).
        n_members: the members' count (for runs whose DP parameters must be
            rebuilt from the recipe).
        budget: the stored random budget (:mod:`tuner.search_budget`), or
            ``None`` for a fixed number of trials.
    """
    if chosen.defense.dp is None or chosen.delta is None:
        return None
    delta = float(chosen.delta)
    space = SearchSpace(config.search_space)
    runs: list[DPRun] = []
    non_dp: list[int] = []
    for trial in _trained(study):
        run, is_dp = _run_of(trial, space, config, n_members)
        if not is_dp:
            non_dp.append(trial.number)
        elif run is not None:
            runs.append(run)
    chosen_run = _record_run(chosen, config, n_members)
    retrains = [
        _retrain_run(candidate, config, n_members)
        for candidate in confirmed
        for _ in range(config.confirmation.seeds)
    ]
    retrain_events = [r.event() for r in retrains if r is not None]
    dominating = dominating_run(runs) if runs else None
    if non_dp or dominating is None:
        basis, search_event = "unbounded", None
    elif budget is not None:
        basis = "repeat_and_select"
        shape = math.inf if budget["distribution"] == "poisson" else float(budget["eta"])
        search_event = dp_accounting.dp_event.RepeatAndSelectDpEvent(
            dominating.event(), float(budget["expected_runs"]), shape
        )
    else:
        basis = "composition"
        search_event = dp_accounting.ComposedDpEvent([r.event() for r in runs])
    per_run_rdp = epsilon_of(chosen_run.event(), delta=delta)
    if search_event is None:
        search = with_confirmation = with_final = math.inf
    else:
        search = epsilon_of(search_event, delta=delta)
        with_confirmation = epsilon_of(dp_accounting.ComposedDpEvent([search_event, *retrain_events]), delta=delta)
        with_final = epsilon_of(
            dp_accounting.ComposedDpEvent([search_event, *retrain_events, chosen_run.event()]), delta=delta
        )
    return PrivacyCost(
        delta=delta,
        per_run_epsilon=chosen.epsilon,
        per_run_epsilon_rdp=per_run_rdp,
        search_basis=basis,
        search_epsilon=search,
        confirmation_runs=len(retrains),
        search_and_confirmation_epsilon=with_confirmation,
        with_final_run_epsilon=with_final,
        dp_trials=len(runs),
        non_dp_trials=tuple(non_dp),
        dominating=dominating,
        budget=budget,
    )


def which_epsilon_lines(cost: PrivacyCost | None, *, dp_recommended: bool) -> list[str]:
    """The plain-words paragraph "which ε holds for what" of the report."""
    if not dp_recommended or cost is None:
        return [
            "The recommendation does not use DP-SGD: no ε applies to it. Its protection is the measured "
            "realistic risk above, under the stated threat model, and nothing more. The search trained "
            "every trial on the same members; choosing settings on their data leaks too.",
        ]
    per_run = cost.per_run_epsilon if cost.per_run_epsilon is not None else cost.per_run_epsilon_rdp
    lines = [
        f"Per training run: ε = {per_run:.3g} (δ = {cost.delta:.3g}; {cost.per_run_epsilon_rdp:.3g} by the RDP "
        "accountant used below). This holds for one model trained with these settings only if the settings "
        "had been chosen without these members' data.",
    ]
    if cost.search_basis == "unbounded":
        trials = ", ".join(f"#{n}" for n in cost.non_dp_trials[:10])
        more = "" if len(cost.non_dp_trials) <= 10 else f" and {len(cost.non_dp_trials) - 10} more"
        lines.append(
            f"The tuning procedure: ε = ∞. Trial(s) {trials}{more} trained on the members without DP (the "
            "undefended baseline among them), so the search as a whole carries no DP guarantee, and neither "
            "does any model retrained with the settings it chose on the same members. To get a finite "
            "figure, search DP runs only with a random budget (study.search_budget: poisson or "
            "truncated_negative_binomial, search_space.dp.use: [true])."
        )
    else:
        how = (
            f"Papernot & Steinke's bound for releasing the best of a random number of runs "
            f"({cost.budget['distribution'] if cost.budget else ''}, mean {cost.budget['expected_runs']:.3g})"
            if cost.search_basis == "repeat_and_select"
            else f"the composition of all {cost.dp_trials} runs (a fixed number of runs: their costs add up)"
        )
        dom = cost.dominating
        lines.append(
            f"The tuning procedure: ε = {cost.search_epsilon:.3g} for the search ({how}; each run bounded by the "
            f"dominating run σ = {dom.noise_multiplier:.3g}, q = {dom.sample_rate:.3g}, {dom.steps} steps), "
            f"{cost.search_and_confirmation_epsilon:.3g} with the {cost.confirmation_runs} confirmation "
            f"retrain(s). This is the guarantee of the recommendation itself: its settings were chosen on "
            "these members."
        )
        lines.append(
            f"A model you retrain once more on the same members with these settings: ε = "
            f"{cost.with_final_run_epsilon:.3g} in all (search, confirmation and that run composed)."
        )
    lines.append(
        "Not covered by any ε: the attack evaluation reads the members directly to measure risk; the report "
        "and its figures are for the data owner, not for release."
    )
    return lines


def _trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sorted(study.get_trials(deepcopy=False, states=done), key=lambda t: t.number)


def _run_of(
    trial: optuna.trial.FrozenTrial, space: SearchSpace, config: RunConfig, n_members: int
) -> tuple[DPRun | None, bool]:
    """(the trial's DP run, whether it used DP); recorded figures first, else rebuilt from its settings."""
    attrs = trial_attrs(trial)
    if "defense" in attrs:
        defense = DefenseConfig.from_dict(attrs["defense"])
        if defense.dp is None:
            return None, False
        if attrs.get("noise_multiplier") and attrs.get("sample_rate") and attrs.get("steps") is not None:
            return DPRun(float(attrs["noise_multiplier"]), float(attrs["sample_rate"]), int(attrs["steps"])), True
    elif attrs.get(BASELINE_ATTR):
        return None, False
    else:
        try:
            defense = space.suggest(optuna.trial.FixedTrial(trial.params))
        except Exception:  # noqa: BLE001 - a trial that failed before its settings were drawn
            return None, True
        if defense.dp is None:
            return None, False
    return _planned_run(defense, config, n_members), True


def _record_run(record: TrialRecord, config: RunConfig, n_members: int) -> DPRun:
    if record.noise_multiplier and record.sample_rate and record.steps is not None:
        return DPRun(float(record.noise_multiplier), float(record.sample_rate), int(record.steps))
    return _planned_run(record.defense, config, n_members)


def _retrain_run(record: TrialRecord, config: RunConfig, n_members: int) -> DPRun | None:
    """A confirmation retrain: the trial's σ and q, at most every epoch's steps (early stopping varies)."""
    if record.defense.dp is None:
        return None
    run = _record_run(record, config, n_members)
    if record.defense.early_stopping_patience is None:
        return run
    return DPRun(run.noise_multiplier, run.sample_rate, _steps_per_epoch(run.sample_rate) * config.recipe.epochs)


def _planned_run(defense: DefenseConfig, config: RunConfig, n_members: int) -> DPRun:
    """The most a run with ``defense`` can have spent: every epoch's steps, its σ (found as Opacus finds it)."""
    dp = defense.dp
    assert dp is not None
    batches = math.ceil(n_members / config.recipe.batch_size)
    sample_rate = 1.0 / batches
    if dp.noise_multiplier is not None:
        sigma = float(dp.noise_multiplier)
    else:
        delta = dp.delta if dp.delta is not None else 1.0 / (10 * n_members)
        sigma = noise_multiplier_for_epsilon(
            target_epsilon=float(dp.target_epsilon),  # type: ignore[arg-type]
            delta=delta,
            sample_rate=sample_rate,
            epochs=config.recipe.epochs,
            accountant=dp.accountant,
        )
    return DPRun(sigma, sample_rate, batches * config.recipe.epochs)


def _steps_per_epoch(sample_rate: float) -> int:
    return max(1, round(1.0 / sample_rate))


def _finite(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


@contextmanager
def _quiet_accountant() -> Iterator[None]:
    """dp_accounting logs (through absl) every fractional Rényi order it excludes; that is expected."""
    from absl import logging as absl_logging

    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(before)
