"""The privacy cost of tuning: values worked out independently of dp_accounting's event code."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from defenses import DefenseConfig, DPSettings
from tuner.config import config_from_dict
from tuner.privacy_cost import (
    DPRun,
    dominating_run,
    epsilon_of,
    privacy_cost,
    repeat_and_select_epsilon,
    which_epsilon_lines,
)
from tuner.records import TrialRecord

ORDERS = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024], dtype=float)


def _rdp_to_dp(rdp: np.ndarray, delta: float) -> float:
    """ε = min_λ [ε(λ) + log(1 − 1/λ) − log(δλ)/(λ − 1)] (Canonne, Kamath & Steinke 2020, Prop. 12)."""
    usable = ORDERS > 1.01
    a, r = ORDERS[usable], rdp[usable]
    return float(np.min(r + np.log1p(-1 / a) - np.log(delta * a) / (a - 1)))


def _gaussian_rdp(sigma: float) -> np.ndarray:
    """RDP of the Gaussian mechanism with sensitivity 1: ε(λ) = λ / (2σ²) (Mironov 2017)."""
    return ORDERS / (2 * sigma**2)


class TestAgainstHandFormulas:
    # A "run" with sampling rate 1 and one step is exactly the Gaussian mechanism.
    RUN = DPRun(noise_multiplier=2.0, sample_rate=1.0, steps=1)
    DELTA = 1e-5

    def test_single_run(self) -> None:
        assert epsilon_of(self.RUN.event(), delta=self.DELTA) == pytest.approx(
            _rdp_to_dp(_gaussian_rdp(2.0), self.DELTA), rel=1e-9
        )

    def test_composition_of_k_runs_adds_rdp(self) -> None:
        import dp_accounting

        composed = dp_accounting.ComposedDpEvent([self.RUN.event()] * 10)
        assert epsilon_of(composed, delta=self.DELTA) == pytest.approx(
            _rdp_to_dp(10 * _gaussian_rdp(2.0), self.DELTA), rel=1e-9
        )

    def test_geometric_repeat_and_select_is_papernot_steinke_theorem_2(self) -> None:
        # Truncated negative binomial with η = 1 (geometric), γ = 0.1, so E[K] = 1/γ = 10. Theorem 2:
        # ε'(λ) = ε(λ) + (1 + η)·min_λ̂ [(1 − 1/λ̂)·ε(λ̂) + log(1/γ)/λ̂] + log E[K]/(λ − 1),
        # then monotonicity in λ (an RDP bound at a larger order holds at a smaller one).
        eta, gamma, mean = 1.0, 0.1, 10.0
        eps = _gaussian_rdp(2.0)
        c = (1 + eta) * np.min((1 - 1 / ORDERS) * eps + np.log(1 / gamma) / ORDERS)
        out = eps + c + math.log(mean) / (ORDERS - 1)
        out = np.array([out[ORDERS >= a].min() for a in ORDERS])
        expected = _rdp_to_dp(out, self.DELTA)
        got = repeat_and_select_epsilon(
            self.RUN, delta=self.DELTA, distribution="truncated_negative_binomial", mean=mean, eta=eta
        )
        assert got == pytest.approx(expected, rel=1e-6)
        # and far below running 10 times and publishing everything
        assert got < _rdp_to_dp(10 * eps, self.DELTA)


def test_dominating_run_takes_the_worst_of_each_parameter() -> None:
    runs = [DPRun(2.0, 0.1, 100), DPRun(1.0, 0.05, 300), DPRun(3.0, 0.2, 50)]
    assert dominating_run(runs) == DPRun(noise_multiplier=1.0, sample_rate=0.2, steps=300)
    with pytest.raises(ValueError, match="at least one run"):
        dominating_run([])


# --- privacy_cost on a real (in-memory) Optuna study --------------------------------------------


def _record(number: int, defense: DefenseConfig, *, sigma: float | None, steps: int | None) -> TrialRecord:
    dp = defense.dp is not None
    return TrialRecord(
        number=number, is_baseline=number == 0, defense=defense, utility_validation=0.9,
        utility_validation_interval=(0.85, 0.95), utility_test=0.9, utility_test_interval=(0.85, 0.95),
        risk=0.01, risk_interval=(0.0, 0.02), advantage=0.0, break_even_prior=0.5, adequate=True,
        uncertain=False, worst_case_risk=0.5, worst_case_adequate=True, worst_case_auc=0.5,
        worst_case_tpr={0.001: 0.0, 0.01: 0.01}, epochs_run=10, epsilon=1.0 if dp else None,
        delta=1e-4 if dp else None, noise_multiplier=sigma, realistic={}, worst_case={},
        sample_rate=0.1 if dp else None, steps=steps,
    )


def _study(trials: list[tuple[DefenseConfig, float | None, int | None]]) -> optuna.Study:
    study = optuna.create_study()
    for i, (defense, sigma, steps) in enumerate(trials):
        attrs = {"defense": defense.to_dict(), "noise_multiplier": sigma, "sample_rate": 0.1 if sigma else None,
                 "steps": steps, "baseline": i == 0}
        study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs=attrs))
    return study


DP1 = DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0))
DP2 = DefenseConfig(dp=DPSettings(noise_multiplier=2.0, max_grad_norm=1.0))
CONFIG = config_from_dict({"confirmation": {"seeds": 2}})


def test_a_non_dp_trial_makes_the_search_unbounded() -> None:
    study = _study([(DefenseConfig(), None, None), (DP1, 1.0, 100), (DP2, 2.0, 100)])
    chosen = _record(2, DP2, sigma=2.0, steps=100)
    cost = privacy_cost(study, CONFIG, chosen=chosen, confirmed=[chosen], n_members=100, budget=None)
    assert cost is not None
    assert cost.search_basis == "unbounded" and cost.non_dp_trials == (0,)
    assert math.isinf(cost.search_epsilon) and math.isinf(cost.with_final_run_epsilon)
    assert cost.to_dict()["search_epsilon"] == "inf"
    text = " ".join(which_epsilon_lines(cost, dp_recommended=True))
    assert "ε = ∞" in text and "#0" in text


def test_fixed_all_dp_search_composes_every_run_and_the_retrains() -> None:
    study = _study([(DP1, 1.0, 100), (DP2, 2.0, 100)])
    chosen = _record(1, DP2, sigma=2.0, steps=100)
    cost = privacy_cost(study, CONFIG, chosen=chosen, confirmed=[chosen], n_members=100, budget=None)
    assert cost.search_basis == "composition" and cost.dp_trials == 2
    one, two = DPRun(1.0, 0.1, 100).event(), DPRun(2.0, 0.1, 100).event()
    import dp_accounting

    assert cost.search_epsilon == pytest.approx(epsilon_of(dp_accounting.ComposedDpEvent([one, two]), delta=1e-4))
    # two confirmation retrains of σ = 2 (no early stopping: the recorded 100 steps each), then a final run
    assert cost.confirmation_runs == 2
    expected = epsilon_of(dp_accounting.ComposedDpEvent([one, two, two, two]), delta=1e-4)
    assert cost.search_and_confirmation_epsilon == pytest.approx(expected)
    assert cost.with_final_run_epsilon == pytest.approx(
        epsilon_of(dp_accounting.ComposedDpEvent([one, two, two, two, two]), delta=1e-4)
    )
    assert cost.per_run_epsilon_rdp == pytest.approx(epsilon_of(two, delta=1e-4))
    assert cost.search_epsilon < cost.search_and_confirmation_epsilon < cost.with_final_run_epsilon


def test_random_budget_uses_repeat_and_select_of_the_dominating_run() -> None:
    study = _study([(DP1, 1.0, 80), (DP2, 2.0, 100), (DP2, 2.0, 100)])
    chosen = _record(1, DP2, sigma=2.0, steps=100)
    budget = {"distribution": "poisson", "mean": 3.0, "eta": None, "gamma": None, "seed": 0, "runs": 3,
              "expected_runs": 3.0}
    cost = privacy_cost(study, CONFIG, chosen=chosen, confirmed=[chosen], n_members=100, budget=budget)
    assert cost.search_basis == "repeat_and_select"
    assert cost.dominating == DPRun(1.0, 0.1, 100)
    assert cost.search_epsilon == pytest.approx(
        repeat_and_select_epsilon(DPRun(1.0, 0.1, 100), delta=1e-4, distribution="poisson", mean=3.0)
    )


def test_no_cost_for_a_recommendation_without_dp() -> None:
    study = _study([(DefenseConfig(), None, None)])
    chosen = _record(0, DefenseConfig(), sigma=None, steps=None)
    assert privacy_cost(study, CONFIG, chosen=chosen, confirmed=[chosen], n_members=100, budget=None) is None
    assert "no ε applies" in which_epsilon_lines(None, dp_recommended=False)[0]


def test_pruned_trials_count_with_every_epoch_of_steps() -> None:
    # a pruned DP trial has no recorded figures: it is rebuilt from its settings, at the recipe's full length
    config = config_from_dict({"training": {"epochs": 3, "batch_size": 10}, "search_space": {
        "dp": {"use": [True], "noise_multiplier": 1.5, "max_grad_norm": 1.0}, "weight_decay": None,
        "dropout": None, "label_smoothing": None, "early_stopping": {"use": [False]}}})
    study = _study([(DP2, 2.0, 30)])
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={}, distributions={}))
    chosen = _record(0, DP2, sigma=2.0, steps=30)
    cost = privacy_cost(study, config, chosen=chosen, confirmed=[chosen], n_members=100, budget=None)
    assert cost.dp_trials == 2
    # 100 members / batch 10: q = 0.1, 10 steps per epoch, 3 epochs: the pruned trial counts as σ 1.5, 30 steps
    assert cost.dominating == DPRun(1.5, 0.1, 30)
