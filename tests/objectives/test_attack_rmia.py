from __future__ import annotations

import numpy as np
import pytest

from objectives import Observations, restrict_to_access
from objectives.attacks import RMIAAttack


def _binary(target_p: list[float], reference_p: list[list[float]]) -> Observations:
    """Two-class records of true class 0 with the given class-0 probability per model."""
    target = np.array(target_p)
    refs = np.array(reference_p)
    return Observations(
        labels=np.zeros(target.size, dtype=int),
        target_logits=np.log(np.stack([target, 1 - target], axis=-1)),
        reference_logits=np.log(np.stack([refs, 1 - refs], axis=-1)),
    )


# Two candidate records x and a population of three z, two OUT reference models, a = 0.3:
#   Pr(·) = ½(1.3·mean_ref + 0.7)
#   x1: target 0.9, refs (0.6, 0.4): mean 0.5, Pr = 0.675, ratio 0.9/0.675 = 1.333333
#   x2: target 0.5, refs (0.5, 0.7): mean 0.6, Pr = 0.740, ratio 0.5/0.740 = 0.675676
#   z1: target 0.2, refs (0.2, 0.4): mean 0.3, Pr = 0.545, ratio 0.2/0.545 = 0.366972
#   z2: target 0.6, refs (0.6, 0.2): mean 0.4, Pr = 0.610, ratio 0.6/0.610 = 0.983607
#   z3: target 0.8, refs (0.5, 0.5): mean 0.5, Pr = 0.675, ratio 0.8/0.675 = 1.185185
RECORDS = _binary([0.9, 0.5], [[0.6, 0.5], [0.4, 0.7]])
POPULATION = _binary([0.2, 0.6, 0.8], [[0.2, 0.6, 0.5], [0.4, 0.2, 0.5]])


def test_hand_worked_scores_at_gamma_two() -> None:
    # LR(x, z) ≥ 2  ⇔  ratio_z ≤ ratio_x / 2
    # x1: ratio_z ≤ 0.666667 → z1 only → 1/3;   x2: ratio_z ≤ 0.337838 → none → 0
    scores = RMIAAttack(gamma=2.0, offline_a=0.3).score(RECORDS, POPULATION)
    np.testing.assert_allclose(scores, [1 / 3, 0.0], rtol=1e-15)


def test_hand_worked_scores_at_gamma_one() -> None:
    # x1: ratio_z ≤ 1.333333 → all three → 1;   x2: ratio_z ≤ 0.675676 → z1 → 1/3
    scores = RMIAAttack(gamma=1.0, offline_a=0.3).score(RECORDS, POPULATION)
    np.testing.assert_allclose(scores, [1.0, 1 / 3], rtol=1e-15)


def test_offline_a_one_uses_the_out_mean_alone() -> None:
    # a = 1: Pr = mean_ref.  x1: 0.9/0.5 = 1.8; x2: 0.5/0.6 = 0.833333
    # z: 0.2/0.3 = 0.666667, 0.6/0.4 = 1.5, 0.8/0.5 = 1.6
    # γ = 2: x1 needs ratio_z ≤ 0.9 → z1 → 1/3; x2 needs ≤ 0.416667 → 0
    scores = RMIAAttack(gamma=2.0, offline_a=1.0).score(RECORDS, POPULATION)
    np.testing.assert_allclose(scores, [1 / 3, 0.0], rtol=1e-15)


def test_defaults() -> None:
    attack = RMIAAttack()
    assert (attack.gamma, attack.offline_a) == (2.0, 0.3)
    assert RMIAAttack.uses_reference_models
    assert repr(attack) == "RMIAAttack(gamma=2.0, offline_a=0.3)"


def test_label_access() -> None:
    # one-hot logits (1, 0) for a correct prediction: softmax p_y = e/(e + 1) = 0.731059;
    # a wrong one (0, 1): p_y = 1/(1 + e) = 0.268941.
    # x: target right, both refs wrong: mean 0.268941, Pr = ½(1.3·0.268941 + 0.7) = 0.524812,
    #    ratio 0.731059/0.524812 = 1.392994
    # z1: target right, refs right: Pr = ½(1.3·0.731059 + 0.7) = 0.825188, ratio 0.885935
    # z2: target wrong, refs right: ratio 0.268941/0.825188 = 0.325915
    # γ = 2: ratio_z ≤ 0.696497 → z2 only → 1/2
    records = _binary([0.9], [[0.3], [0.4]])
    population = _binary([0.8, 0.1], [[0.7, 0.9], [0.6, 0.95]])
    scores = RMIAAttack().score(
        restrict_to_access(records, "label"), restrict_to_access(population, "label")
    )
    np.testing.assert_allclose(scores, [0.5], rtol=1e-15)


class TestRefusals:
    def test_needs_a_population(self) -> None:
        with pytest.raises(ValueError, match="non-empty population"):
            RMIAAttack().score(RECORDS, None)

    def test_needs_matching_reference_models(self) -> None:
        one_model = _binary([0.2], [[0.3]])
        with pytest.raises(ValueError, match="K=2 and K=1"):
            RMIAAttack().score(RECORDS, one_model)

    def test_rejects_bad_gamma(self) -> None:
        with pytest.raises(ValueError) as info:
            RMIAAttack(gamma=0.0).score(RECORDS, POPULATION)
        assert str(info.value) == "rmia needs gamma > 0, but got gamma=0.0"

    def test_rejects_bad_offline_a(self) -> None:
        with pytest.raises(ValueError, match="0 <= offline_a <= 1"):
            RMIAAttack(offline_a=1.5).score(RECORDS, POPULATION)


def test_likelihood_ratio_is_the_relative_probability() -> None:
    # Λ = Pr(x|θ)/Pr(x) from the table above: x1 0.9/0.675 = 4/3, x2 0.5/0.740 = 0.675676
    attack = RMIAAttack(gamma=2.0, offline_a=0.3)
    np.testing.assert_allclose(attack.likelihood_ratio(RECORDS, POPULATION), [0.9 / 0.675, 0.5 / 0.74], rtol=1e-12)
    np.testing.assert_allclose(
        attack.log_likelihood_ratio(RECORDS), np.log([0.9 / 0.675, 0.5 / 0.74]), rtol=1e-12
    )


def test_likelihood_ratio_is_bounded_offline() -> None:
    # Pr(x) ≥ (1 − a)/2 = 0.35, so Λ ≤ 1/0.35 however sure the target is
    sure = _binary([1.0 - 1e-12], [[1e-12], [1e-12]])
    assert RMIAAttack().likelihood_ratio(sure)[0] == pytest.approx(1 / 0.35, rel=1e-9)
