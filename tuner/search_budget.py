"""How many trials a study runs: fixed, or drawn at random (Papernot & Steinke, ICLR 2022).

Papernot & Steinke ("Hyperparameter Tuning with Renyi Differential
Privacy", ICLR 2022) show that running a DP algorithm a *random* number of
times K, each run with settings drawn independently of the data, and
releasing only the best run costs little more privacy than one run — unlike
a fixed number of runs, whose costs add up. With ``study.search_budget``
set to ``poisson`` or ``truncated_negative_binomial``, the number of runs is
drawn once per study, seeded by ``study.seed``, and stored in the study's
user attributes, so that resuming the study (or another worker joining it)
keeps the same K; changing the budget of a started study is refused.

The distributions (their Definition 1 and Section 3):

* Poisson(μ): ``Pr[K = k] = e^{−μ} μ^k / k!`` (K = 0 is possible: then
  nothing is released);
* truncated negative binomial ``D_{η,γ}``, ``η ≥ 0``, ``γ ∈ (0, 1)``:
  ``Pr[K = k] ∝ (1 − γ)^k · binom(k + η − 1, k)`` for ``k ≥ 1``; η = 1 is
  the geometric distribution, η = 0 the logarithmic one
  ``Pr[K = k] = (1 − γ)^k / (k·ln(1/γ))``. Its mean is
  ``η(1 − γ) / (γ(1 − γ^η))`` (``(1 − γ)/(γ·ln(1/γ))`` at η = 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna

from tuner.config import RunConfig, SearchBudget
from tuner.errors import ConfigError

BUDGET_ATTR = "search_budget"
_SEED_SALT = 0x5EA4C4  # keeps the budget's random stream apart from every other use of study.seed


def expected_runs(budget: SearchBudget) -> float:
    """The mean number of runs of a random budget.

    Example:
        >>> round(expected_runs(SearchBudget("truncated_negative_binomial", eta=1.0, gamma=0.1)), 9)
        10.0
    """
    if budget.distribution == "poisson":
        return float(budget.mean)  # type: ignore[arg-type]
    if budget.distribution == "truncated_negative_binomial":
        eta, gamma = float(budget.eta), float(budget.gamma)  # type: ignore[arg-type]
        if eta == 0.0:
            return (1.0 - gamma) / (gamma * math.log(1.0 / gamma))
        return eta * (1.0 - gamma) / (gamma * (1.0 - gamma**eta))
    raise ValueError(f"a fixed budget has no distribution of runs, but got {budget.distribution!r}")


def draw_runs(budget: SearchBudget, *, seed: int) -> int:
    """Draw the number of runs K of a random budget (seeded, reproducible).

    Example:
        >>> draw_runs(SearchBudget("poisson", mean=10.0), seed=0) == draw_runs(
        ...     SearchBudget("poisson", mean=10.0), seed=0)
        True
    """
    rng = np.random.default_rng([seed, _SEED_SALT])
    if budget.distribution == "poisson":
        return int(rng.poisson(float(budget.mean)))  # type: ignore[arg-type]
    if budget.distribution == "truncated_negative_binomial":
        eta, gamma = float(budget.eta), float(budget.gamma)  # type: ignore[arg-type]
        if eta == 0.0:
            return int(rng.logseries(1.0 - gamma))
        while True:  # NB(η, γ) conditioned on K ≥ 1 (rejection: Pr[K = 0] = γ^η < 1)
            k = int(rng.negative_binomial(eta, gamma))
            if k >= 1:
                return k
    raise ValueError(f"a fixed budget has no random number of runs, but got {budget.distribution!r}")


def budget_record(budget: SearchBudget, *, seed: int, runs: int) -> dict[str, Any]:
    """What the study stores about its budget (JSON-ready)."""
    return {
        "distribution": budget.distribution,
        "mean": budget.mean,
        "eta": budget.eta,
        "gamma": budget.gamma,
        "seed": seed,
        "runs": runs,
        "expected_runs": expected_runs(budget),
    }


def planned_runs(study: optuna.Study, config: RunConfig) -> int | None:
    """The study's number of runs K under a random budget (drawn and stored once), else ``None``.

    Raises:
        ConfigError: the study was started under another budget (changing it
            after the draw would void the bound).
    """
    budget = config.study.search_budget
    stored = study.user_attrs.get(BUDGET_ATTR)
    if not budget.is_random:
        if stored is not None:
            raise ConfigError(
                f"study.search_budget: the study {study.study_name!r} was started with a random budget "
                f"({stored['distribution']}); resume it with the same study.search_budget, or choose another "
                "--out folder or study.name"
            )
        return None
    wanted = budget_record(budget, seed=config.study.seed, runs=0)
    if stored is None:
        runs = draw_runs(budget, seed=config.study.seed)
        study.set_user_attr(BUDGET_ATTR, {**wanted, "runs": runs})
        return runs
    same = all(stored.get(k) == wanted[k] for k in ("distribution", "mean", "eta", "gamma", "seed"))
    if not same:
        raise ConfigError(
            f"study.search_budget: the study {study.study_name!r} drew its number of runs under "
            f"{_describe(stored)} (seed {stored.get('seed')}), not {_describe(wanted)} (seed "
            f"{config.study.seed}); changing the budget after the draw would void the privacy bound of the "
            "search. Resume with the same settings, or choose another --out folder or study.name"
        )
    return int(stored["runs"])


def runs_started(study: optuna.Study) -> int:
    """Trials that trained on the members: every trial except those still waiting or running."""
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def describe_budget(record: dict[str, Any] | None) -> str:
    """One line on the budget, for reports."""
    if record is None:
        return "fixed number of trials (study.trials per run)"
    return (
        f"{_describe(record)}: K = {record['runs']} run(s) drawn with seed {record['seed']} "
        f"(mean {record['expected_runs']:.3g})"
    )


def _describe(record: dict[str, Any]) -> str:
    if record["distribution"] == "poisson":
        return f"poisson(mean={record['mean']:g})"
    return f"truncated_negative_binomial(eta={record['eta']:g}, gamma={record['gamma']:g})"
