"""One trial end to end in-process: real training, real attacks, real risk figures."""

from __future__ import annotations

import numpy as np
import pytest

from defenses import DefenseConfig
from tuner.config import config_from_dict
from tuner.trial import evaluate_defense, trial_seed
from tuner.tune import prepare


def small_config(**overrides):
    raw = {
        "study": {"name": "t", "seed": 0},
        "training": {"epochs": 8},
        "threat_model": {"calibration_fprs": [0.1]},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def overfit():
    """An undefended MLP trained to memorize a tiny training set (36 digits)."""
    config = small_config(
        data={"roles": {"members": 0.02, "nonmembers": 0.3, "attacker_pool": 0.4, "validation": 0.14, "test": 0.14}},
        model={"hidden_sizes": [256]},
        training={"epochs": 200, "learning_rate": 0.1, "batch_size": 16},
    )
    prepared = prepare(config)
    return prepared, evaluate_defense(prepared.context, DefenseConfig(), seed=1)


def test_a_heavily_overfitted_model_has_worst_case_auc_well_above_half(overfit):
    prepared, evaluation = overfit
    assert len(prepared.roles.members) == 36
    # Memorized members have near-zero loss while unseen digits do not: the
    # oracle ROC separates them (an unleaky model gives 0.5).
    assert evaluation.worst_case.auc > 0.8
    assert evaluation.worst_case.advantage > 0.4


def test_realistic_figures_follow_the_design_formulas(overfit):
    prepared, evaluation = overfit
    realistic = evaluation.realistic
    prior = prepared.config.threat_model.membership_prior
    worst = realistic.worst
    # PPV = π·TPR / (π·TPR + (1−π)·FPR) at the worst operating point.
    expected = prior * worst.tpr / (prior * worst.tpr + (1 - prior) * worst.fpr)
    assert realistic.risk == pytest.approx(expected, rel=1e-12)
    assert realistic.advantage == pytest.approx((realistic.risk - prior) / (1 - prior), rel=1e-9)
    # The point counts realized claims on the evaluation sets of this trial.
    assert worst.n_members == len(prepared.roles.members)
    assert worst.n_nonmembers == len(prepared.roles.nonmembers)
    assert realistic.interval[0] <= realistic.risk <= realistic.interval[1]


def test_the_same_seed_gives_the_same_trial():
    prepared = prepare(small_config())
    seed = trial_seed(0, 3)
    a = evaluate_defense(prepared.context, DefenseConfig(weight_decay=1e-3), seed=seed)
    b = evaluate_defense(prepared.context, DefenseConfig(weight_decay=1e-3), seed=seed)
    assert a.utility_test == b.utility_test
    for name in a.scores:
        np.testing.assert_array_equal(a.scores[name].members, b.scores[name].members)
    assert a.realistic.to_dict() == b.realistic.to_dict()


def test_trial_seeds_differ_per_trial_and_replicate():
    seeds = {trial_seed(0, n, r) for n in range(20) for r in range(4)}
    assert len(seeds) == 80
