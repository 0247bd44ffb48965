"""Per-record exposure and DP bounds as the tuner records them, and the max_exposed adequacy bound."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from defenses import DefenseConfig, DPSettings
from objectives import ppv
from tuner.config import config_from_dict
from tuner.records import TrialRecord
from tuner.selection import rank_candidates
from tuner.trial import evaluate_defense
from tuner.tune import prepare


def record(number: int, *, exposed: int | None, max_exposed: int | None, val: float = 0.9) -> TrialRecord:
    return TrialRecord(
        number=number, is_baseline=number == 0, defense=DefenseConfig(weight_decay=1e-3 * number),
        utility_validation=val, utility_validation_interval=(val - 0.001, val + 0.001), utility_test=val,
        utility_test_interval=(val - 0.03, val + 0.03), risk=0.1, risk_interval=(0.05, 0.2), advantage=0.0,
        break_even_prior=0.5, adequate=True, uncertain=False, worst_case_risk=0.4, worst_case_adequate=True,
        worst_case_auc=0.6, worst_case_tpr={0.01: 0.02}, epochs_run=10, epsilon=None, delta=None,
        noise_multiplier=None, realistic={}, worst_case={},
        exposure=None if exposed is None else {"count": exposed, "rows": list(range(exposed))},
        max_exposed=max_exposed,
    )


class TestMaxExposed:
    def test_bound_is_inclusive_and_applies_in_both_views(self) -> None:
        assert record(0, exposed=2, max_exposed=2).adequate_in("realistic")
        assert not record(0, exposed=3, max_exposed=2).adequate_in("realistic")
        assert not record(0, exposed=3, max_exposed=2).adequate_in("worst_case")

    def test_without_a_bound_exposure_does_not_matter(self) -> None:
        assert record(0, exposed=50, max_exposed=None).adequate_in("realistic")

    def test_studies_recorded_before_exposure_are_judged_on_ppv_alone(self) -> None:
        assert record(0, exposed=None, max_exposed=0).adequate_in("realistic")

    def test_ranking_skips_trials_with_too_many_exposed(self) -> None:
        best = record(1, exposed=5, max_exposed=1, val=0.95)
        ok = record(2, exposed=1, max_exposed=1, val=0.90)
        assert [r.number for r in rank_candidates([best, ok])] == [2]


@pytest.fixture(scope="module")
def dp_evaluation():
    config = config_from_dict({"training": {"epochs": 2}, "threat_model": {"attacks": ["loss", "rmia", "lira_offline"]},
                               "search_space": {"dp": {"accountant": "rdp"}}})
    prepared = prepare(config)
    defense = DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0, accountant="rdp"))
    return prepared, evaluate_defense(prepared.context, defense, seed=5)


def test_dp_bounds_sit_at_each_resolvable_points_realized_fpr(dp_evaluation) -> None:
    prepared, evaluation = dp_evaluation
    bounds = evaluation.dp_bounds
    assert bounds is not None and bounds.epsilon == evaluation.epsilon and bounds.delta == evaluation.delta
    resolvable = [p for p in evaluation.realistic.points if p.resolvable]
    assert len(bounds.realistic) == len(resolvable)
    prior = prepared.config.threat_model.membership_prior
    for b, p in zip(bounds.realistic, resolvable):
        cap = min(1.0, math.exp(evaluation.epsilon) * p.fpr + evaluation.delta)
        assert b.tpr_bound == pytest.approx(cap)
        assert b.ppv_bound == pytest.approx(prior * cap / (prior * cap + (1 - prior) * p.fpr))
        assert b.ppv == pytest.approx(ppv(tpr=p.tpr, fpr=p.fpr, prior=prior))
    assert [b.target_fpr for b in bounds.oracle] == [0.001, 0.01]


def test_dp_run_records_what_the_accountant_needs(dp_evaluation) -> None:
    prepared, evaluation = dp_evaluation
    n = len(prepared.roles.members)
    batches = math.ceil(n / prepared.config.recipe.batch_size)
    assert evaluation.sample_rate == pytest.approx(1 / batches)
    assert evaluation.steps == evaluation.epochs_run * batches


def test_exposure_uses_the_members_row_ids(dp_evaluation) -> None:
    prepared, evaluation = dp_evaluation
    exposure = evaluation.exposure
    assert exposure is not None and exposure.attacks == ("rmia", "lira_offline")
    assert set(exposure.rows) <= set(prepared.roles.members.rows.tolist())
    assert exposure.n_members == len(prepared.roles.members)


def test_undefended_run_has_no_dp_bounds() -> None:
    prepared = prepare(config_from_dict({"training": {"epochs": 1}}))
    evaluation = evaluate_defense(prepared.context, DefenseConfig(), seed=1)
    assert evaluation.dp_bounds is None and evaluation.sample_rate is None and evaluation.steps is None
