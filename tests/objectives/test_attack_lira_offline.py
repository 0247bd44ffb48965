from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import Observations
from objectives.attacks import LiRAOfflineAttack


def test_hand_worked_scores() -> None:
    # Two classes, y = 0, so φ = logit_0 - logit_1.
    # target φ = (2, 1); reference φ: model 1 (0, 1), model 2 (2, 1) -> μ_out = (1, 1)
    # global σ over all four reference φ (0, 1, 2, 1): mean 1,
    # σ = sqrt((1 + 0 + 1 + 0)/4) = 0.707107
    # z = ((2 - 1)/0.707107, (1 - 1)/0.707107) = (1.414214, 0)
    obs = Observations(
        labels=np.array([0, 0]),
        target_logits=np.array([[2.0, 0.0], [1.0, 0.0]]),
        reference_logits=np.array([[[0.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [1.0, 0.0]]]),
    )
    np.testing.assert_allclose(LiRAOfflineAttack().score(obs), [math.sqrt(2.0), 0.0], rtol=1e-14)


def test_equal_reference_confidences_keep_the_ranking() -> None:
    # σ = 0: fall back to σ = 1, scores are φ - μ_out = (3, -1)
    obs = Observations(
        labels=np.array([0, 0]),
        target_logits=np.array([[3.0, 0.0], [-1.0, 0.0]]),
        reference_logits=np.zeros((1, 2, 2)),
    )
    np.testing.assert_allclose(LiRAOfflineAttack().score(obs), [3.0, -1.0], rtol=1e-14)


def test_needs_reference_models() -> None:
    obs = Observations(
        labels=np.array([0]), target_logits=np.zeros((1, 2)), reference_logits=np.zeros((0, 1, 2))
    )
    with pytest.raises(ValueError, match="lira_offline needs at least one reference model"):
        LiRAOfflineAttack().score(obs)


class TestLikelihoodRatio:
    """The Sellke–Bayarri–Berger bound 1/(−e·p·ln p) on the LR a p-value can support."""

    def test_hand_worked(self) -> None:
        # z = (√2, 0) from the example above. Record 0: p = Φ(−√2) = 0.0786496 < 1/e:
        # log B = −1 − ln p − ln(−ln p) = −1 + 2.542753 − 0.933248 = 0.609505.
        # Record 1: p = ½ ≥ 1/e: no evidence, log B = 0.
        obs = Observations(
            labels=np.array([0, 0]),
            target_logits=np.array([[2.0, 0.0], [1.0, 0.0]]),
            reference_logits=np.array([[[0.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [1.0, 0.0]]]),
        )
        p = 0.07864960352514251  # Φ(−√2), from tables
        expected = math.log(1.0 / (-math.e * p * math.log(p)))
        np.testing.assert_allclose(
            LiRAOfflineAttack().log_likelihood_ratio(obs), [expected, 0.0], rtol=1e-9
        )
        assert expected == pytest.approx(0.609505, abs=1e-6)

    def test_tiny_p_values_stay_finite(self) -> None:
        # z = 40: ln p ≈ −804.6 (p underflows in float64); log B ≈ 804.6 − 1 − ln 804.6 = 796.9
        obs = Observations(
            labels=np.array([0]),
            target_logits=np.array([[40.0, 0.0]]),
            reference_logits=np.array([[[1.0, 0.0]], [[-1.0, 0.0]]]),
        )
        log_lr = LiRAOfflineAttack().log_likelihood_ratio(obs)
        assert np.isfinite(log_lr).all() and 796.0 < log_lr[0] < 798.0

    def test_bound_at_one_over_e_is_continuous(self) -> None:
        from objectives.attacks import log_p_value_bayes_factor_bound

        near = log_p_value_bayes_factor_bound(log_p=np.array([-1.0 - 1e-9, -1.0, -0.5]))
        np.testing.assert_allclose(near, [0.0, 0.0, 0.0], atol=1e-8)


def test_variance_is_pooled_within_records() -> None:
    # refs φ: record A (0, 2), μ_out 1; record B (4, 4), μ_out 4.
    # pooled within-record variance: (1 + 1 + 0 + 0)/4 = ½ -> σ = 0.707107
    # (the std of all four values {0, 2, 4, 4} would be 1.658312: between-record spread, not noise)
    # target φ: A 3, B 4 -> z = (2/0.707107, 0) = (2.828427, 0)
    obs = Observations(
        labels=np.array([0, 0]),
        target_logits=np.array([[3.0, 0.0], [4.0, 0.0]]),
        reference_logits=np.array([[[0.0, 0.0], [4.0, 0.0]], [[2.0, 0.0], [4.0, 0.0]]]),
    )
    np.testing.assert_allclose(LiRAOfflineAttack().score(obs), [2.0 * math.sqrt(2.0), 0.0], rtol=1e-12)


def _two_class(phi_target: list[float], phi_refs: list[list[float]]) -> Observations:
    target, refs = np.array(phi_target), np.array(phi_refs)
    return Observations(
        labels=np.zeros(target.size, dtype=int),
        target_logits=np.stack([target, np.zeros_like(target)], axis=-1),
        reference_logits=np.stack([refs, np.zeros_like(refs)], axis=-1),
    )


class TestWithAPopulation:
    # population (the attacker's own non-members), two reference models:
    #   refs φ z1 (0, 2), z2-z4 (0, 0): pooled within-record variance (1 + 1)/8 = ¼ -> σ = ½
    #   target φ (1, 1, 2, 3) -> offsets φ − μ_out = (0, 1, 2, 3) -> scores (0, 2, 4, 6)
    POPULATION = _two_class([1.0, 1.0, 2.0, 3.0], [[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    # records: refs (0, 0) each; target φ 2.5 and 4 -> offsets 2.5, 4 -> scores with σ = ½: 5, 8
    RECORDS = _two_class([2.5, 4.0], [[0.0, 0.0], [0.0, 0.0]])

    def test_sigma_comes_from_the_population(self) -> None:
        np.testing.assert_allclose(LiRAOfflineAttack().score(self.RECORDS, self.POPULATION), [5.0, 8.0])
        # without it, σ from the records' own references (all equal: σ = 1)
        np.testing.assert_allclose(LiRAOfflineAttack().score(self.RECORDS), [2.5, 4.0])

    def test_empirical_p_value_and_its_bound(self) -> None:
        # record 1: one of four population scores ≥ 5 -> p = (1 + 1)/(1 + 4) = 0.4 ≥ 1/e -> log Λ ≤ 0
        # record 2: none ≥ 8 -> p = 1/5 -> log B = −1 − ln 0.2 − ln(−ln 0.2) = 0.133553
        log_lr = LiRAOfflineAttack().log_likelihood_ratio(self.RECORDS, self.POPULATION)
        expected = -1.0 - math.log(0.2) - math.log(-math.log(0.2))
        np.testing.assert_allclose(log_lr, [0.0, expected], atol=1e-12)
        assert expected == pytest.approx(0.133553, abs=1e-6)
