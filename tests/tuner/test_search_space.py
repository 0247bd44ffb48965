"""The Optuna search space: trial parameters -> DefenseConfig, the baseline, fixed and removed knobs."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import FixedTrial

from defenses.config import DefenseConfig, DPSettings
from tuner.config import config_from_dict
from tuner.search_space import BASELINE_ATTR, SearchSpace, is_baseline

DEFAULT_BASELINE = {
    "dp": False,
    "early_stopping": False,
    "weight_decay_on": False,
    "dropout": 0.0,
    "label_smoothing": 0.0,
}


def _space(search_space: dict[str, Any] | None = None) -> SearchSpace:
    return SearchSpace(config_from_dict({"search_space": search_space or {}}).search_space)


def _suggest(space: SearchSpace, params: dict[str, Any]) -> tuple[DefenseConfig, dict[str, Any]]:
    """The config for ``params``; FixedTrial raises if a parameter not in ``params`` is suggested."""
    trial = FixedTrial(params)
    return space.suggest(trial), trial.params


class TestDefaultSpace:
    def test_baseline_params_give_the_undefended_config(self) -> None:
        space = _space()
        assert space.baseline_params() == DEFAULT_BASELINE
        defense, suggested = _suggest(space, space.baseline_params())
        assert defense == DefenseConfig() and defense.is_undefended
        assert suggested == DEFAULT_BASELINE  # nothing else was suggested
        assert space.holds_baseline

    def test_everything_on(self) -> None:
        params = {
            "dp": True,
            "noise_multiplier": 1.2,
            "max_grad_norm": 0.8,
            "weight_decay_on": True,
            "weight_decay": 1e-4,
            "dropout": 0.25,
            "label_smoothing": 0.1,
            "early_stopping": True,
            "patience": 4,
        }
        defense, suggested = _suggest(_space(), params)
        assert defense == DefenseConfig(
            dp=DPSettings(noise_multiplier=1.2, max_grad_norm=0.8, accountant="prv"),
            weight_decay=1e-4,
            dropout=0.25,
            label_smoothing=0.1,
            early_stopping_patience=4,
        )
        assert suggested == params

    def test_conditional_parameters_follow_their_switch(self) -> None:
        params = {**DEFAULT_BASELINE, "dropout": 0.3, "early_stopping": True, "patience": 2}
        defense, suggested = _suggest(_space(), params)
        assert defense == DefenseConfig(dropout=0.3, early_stopping_patience=2)
        assert "noise_multiplier" not in suggested and "weight_decay" not in suggested

    def test_describe(self) -> None:
        assert _space().describe() == [
            (
                "DP-SGD: searched on/off; noise multiplier σ log-uniform in [0.3, 5]; "
                "max grad norm C log-uniform in [0.1, 10]; δ 1/(10·members); accountant prv"
            ),
            "weight decay: off or log-uniform in [1e-06, 0.1]",
            "dropout: uniform in [0, 0.6]",
            "label smoothing: uniform in [0, 0.3]",
            "early stopping: searched on/off; patience uniform in [1, 10] epochs",
        ]


class TestConfiguredSpaces:
    def test_fixed_and_removed_knobs_are_not_suggested(self) -> None:
        space = _space(
            {
                "dp": {"use": [True], "noise_multiplier": 1.0, "accountant": "rdp"},
                "weight_decay": None,
                "dropout": 0.1,
                "label_smoothing": {"low": 0.05, "high": 0.2},
                "early_stopping": {"use": [False]},
            }
        )
        params = {"max_grad_norm": 2.0, "label_smoothing_on": True, "label_smoothing": 0.15}
        defense, suggested = _suggest(space, params)
        assert defense == DefenseConfig(
            dp=DPSettings(noise_multiplier=1.0, max_grad_norm=2.0, accountant="rdp"),
            weight_decay=0.0,
            dropout=0.1,
            label_smoothing=0.15,
        )
        assert suggested == params
        # forced DP and a fixed dropout keep the undefended config out of this space
        assert not space.holds_baseline
        assert space.baseline_params() == {"label_smoothing_on": False}

    def test_target_epsilon_mode(self) -> None:
        space = _space(
            {"dp": {"target_epsilon": {"low": 0.5, "high": 50, "log": True}, "delta": 1e-5}}
        )
        params = {**DEFAULT_BASELINE, "dp": True, "target_epsilon": 8.0, "max_grad_norm": 1.0}
        defense, suggested = _suggest(space, params)
        assert defense == DefenseConfig(
            dp=DPSettings(target_epsilon=8.0, max_grad_norm=1.0, delta=1e-5)
        )
        assert "noise_multiplier" not in suggested
        assert space.describe()[0] == (
            "DP-SGD: searched on/off; target ε log-uniform in [0.5, 50]; max grad norm C log-uniform "
            "in [0.1, 10]; δ 1e-05; accountant prv"
        )

    def test_marked_baseline_outside_the_space(self) -> None:
        space = _space({"dp": {"use": [True]}, "early_stopping": {"use": [True], "patience": 3}})
        trial = FixedTrial(space.baseline_params())
        trial.set_user_attr(BASELINE_ATTR, True)
        assert space.suggest(trial) == DefenseConfig()
        assert is_baseline(trial)


@pytest.mark.parametrize(
    ("search_space", "sampler"),
    [
        ({}, optuna.samplers.TPESampler(seed=0)),
        ({"dp": {"use": [True]}, "dropout": 0.2}, optuna.samplers.TPESampler(seed=0)),
        ({}, optuna.samplers.NSGAIISampler(seed=0)),
    ],
)
def test_baseline_is_the_first_trial_of_a_study(search_space: dict[str, Any], sampler: Any) -> None:
    space = _space(search_space)
    study = optuna.create_study(sampler=sampler, directions=["maximize"])
    space.enqueue_baseline(study)  # once: tuner.study.SharedStudy.claim decides when (tests/tuner/test_workers.py)
    defenses: list[DefenseConfig] = []

    def objective(trial: optuna.Trial) -> float:
        defenses.append(space.suggest(trial))
        return -defenses[-1].dropout

    study.optimize(objective, n_trials=6)
    assert defenses[0] == DefenseConfig()
    assert is_baseline(study.trials[0]) and not any(is_baseline(t) for t in study.trials[1:])
    if search_space:  # forced DP: every sampled trial is private
        assert all(d.dp is not None for d in defenses[1:])
