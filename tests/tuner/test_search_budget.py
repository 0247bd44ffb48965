from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from tuner.config import SearchBudget, config_from_dict
from tuner.errors import ConfigError
from tuner.search_budget import BUDGET_ATTR, draw_runs, expected_runs, planned_runs, runs_started

DP_ONLY = {"search_space": {"dp": {"use": [True]}}}


class TestExpectedRuns:
    def test_hand_values(self) -> None:
        # geometric (η = 1): 1/γ; logarithmic (η = 0): (1 − γ)/(γ ln(1/γ)); η = ½, γ = 0.05:
        # ½·0.95/(0.05·(1 − √0.05)) = 9.5/(1 − 0.223607) = 12.236068
        assert expected_runs(SearchBudget("truncated_negative_binomial", eta=1.0, gamma=0.1)) == pytest.approx(10.0)
        assert expected_runs(SearchBudget("truncated_negative_binomial", eta=0.0, gamma=0.1)) == pytest.approx(
            0.9 / (0.1 * math.log(10.0))
        )
        assert expected_runs(SearchBudget("truncated_negative_binomial", eta=0.5, gamma=0.05)) == pytest.approx(
            12.236068, rel=1e-6
        )
        assert expected_runs(SearchBudget("poisson", mean=7.0)) == 7.0


class TestDraws:
    @pytest.mark.parametrize(
        "budget",
        [
            SearchBudget("poisson", mean=6.0),
            SearchBudget("truncated_negative_binomial", eta=1.0, gamma=0.2),
            SearchBudget("truncated_negative_binomial", eta=0.0, gamma=0.2),
            SearchBudget("truncated_negative_binomial", eta=2.5, gamma=0.3),
        ],
        ids=["poisson", "geometric", "logarithmic", "tnb"],
    )
    def test_sample_mean_matches_the_distribution(self, budget: SearchBudget) -> None:
        draws = np.array([draw_runs(budget, seed=s) for s in range(4000)])
        mean = expected_runs(budget)
        # the standard error of the mean of 4000 draws is below 0.1 for these (variance < 40)
        assert abs(draws.mean() - mean) < 0.35
        if budget.distribution != "poisson":
            assert draws.min() >= 1  # truncated at K ≥ 1

    def test_reproducible_and_seed_dependent(self) -> None:
        budget = SearchBudget("poisson", mean=20.0)
        assert draw_runs(budget, seed=3) == draw_runs(budget, seed=3)
        assert len({draw_runs(budget, seed=s) for s in range(10)}) > 1


class TestPlannedRuns:
    def test_fixed_budget_has_no_plan(self) -> None:
        assert planned_runs(optuna.create_study(), config_from_dict({})) is None

    def test_drawn_once_and_kept(self) -> None:
        config = config_from_dict({"study": {"seed": 4, "search_budget": {"distribution": "poisson", "mean": 5}},
                                   **DP_ONLY})
        study = optuna.create_study()
        runs = planned_runs(study, config)
        assert runs == draw_runs(config.study.search_budget, seed=4)
        assert study.user_attrs[BUDGET_ATTR]["runs"] == runs
        assert planned_runs(study, config) == runs

    def test_a_changed_budget_is_refused(self) -> None:
        study = optuna.create_study(study_name="s")
        first = config_from_dict({"study": {"search_budget": {"distribution": "poisson", "mean": 5}}, **DP_ONLY})
        planned_runs(study, first)
        other = config_from_dict({"study": {"search_budget": {"distribution": "poisson", "mean": 6}}, **DP_ONLY})
        with pytest.raises(ConfigError) as info:
            planned_runs(study, other)
        assert str(info.value).startswith(
            "study.search_budget: the study 's' drew its number of runs under poisson(mean=5) (seed 0), "
            "not poisson(mean=6) (seed 0)"
        )
        with pytest.raises(ConfigError, match="was started with a random budget"):
            planned_runs(study, config_from_dict({}))

    def test_runs_started_counts_pruned_and_failed(self) -> None:
        study = optuna.create_study()
        for state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL):
            study.add_trial(optuna.trial.create_trial(state=state, value=0.0 if state.name == "COMPLETE" else None))
        assert runs_started(study) == 3
