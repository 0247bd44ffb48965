from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import Observations
from objectives.attacks import ModifiedEntropyAttack


def _obs(probs: list[list[float]], labels: list[int]) -> Observations:
    target = np.log(np.array(probs))  # softmax(log p) = p
    return Observations(
        labels=np.array(labels), target_logits=target, reference_logits=np.zeros((0, *target.shape))
    )


def test_two_class_hand_values() -> None:
    # p = (0.75, 0.25), y = 0: Mentr = -(0.25) log 0.75 - 0.25 log(1 - 0.25) = -0.5 log 0.75
    #                                 = 0.1438410362;  score = -log Mentr = 1.9390446
    # p = (0.75, 0.25), y = 1: Mentr = -(0.75) log 0.25 - 0.75 log(1 - 0.75) = -1.5 log 0.25
    #                                 = 2.0794415417;  score = -log Mentr = -0.7321083
    scores = ModifiedEntropyAttack().score(_obs([[0.75, 0.25], [0.75, 0.25]], [0, 1]))
    np.testing.assert_allclose(
        scores, [-math.log(-0.5 * math.log(0.75)), -math.log(-1.5 * math.log(0.25))], rtol=1e-12
    )
    assert scores[0] > scores[1]  # confident and right beats confident and wrong


def test_three_class_hand_value() -> None:
    # p = (0.5, 0.3, 0.2), y = 0:
    # Mentr = -0.5 log 0.5 - 0.3 log 0.7 - 0.2 log 0.8
    #       = 0.3465736 + 0.1070025 + 0.0446287 = 0.4982048
    mentr = -0.5 * math.log(0.5) - 0.3 * math.log(0.7) - 0.2 * math.log(0.8)
    assert mentr == pytest.approx(0.4982048, abs=1e-7)
    score = ModifiedEntropyAttack().score(_obs([[0.5, 0.3, 0.2]], [0]))
    assert score[0] == pytest.approx(-math.log(mentr), rel=1e-12)


def test_entropy_alone_could_not_tell_right_from_wrong() -> None:
    # both records have the same prediction entropy; Mentr separates them
    scores = ModifiedEntropyAttack().score(_obs([[0.9, 0.1], [0.9, 0.1]], [0, 1]))
    assert scores[0] > scores[1]


def test_confident_records_stay_distinct_without_clipping() -> None:
    # logits (60, 0), y = 0: 1 - p_y ≈ e^-60 and -log p_y ≈ e^-60, so the true-class term ≈ e^-120;
    # the other class gives p_1·(-log(1 - p_1)) ≈ e^-60·e^-60: Mentr ≈ 2e^-120, score ≈ 120 - log 2.
    # Naive probabilities give p_y = 1.0 exactly and Mentr = 0 for both records.
    target = np.array([[60.0, 0.0], [70.0, 0.0]])
    obs = Observations(
        labels=np.array([0, 0]), target_logits=target, reference_logits=np.zeros((0, 2, 2))
    )
    scores = ModifiedEntropyAttack().score(obs)
    np.testing.assert_allclose(scores, [120 - math.log(2), 140 - math.log(2)], rtol=1e-12)


def test_confidently_wrong_records_are_finite() -> None:
    # logits (0, 80), y = 0: p_y ≈ e^-80, p_1 ≈ 1. True-class term (1 - p_y)(-log p_y) ≈ 80;
    # other term p_1·(-log(1 - p_1)) = -log p_y ≈ 80. Mentr ≈ 160, score = -log 160
    target = np.array([[0.0, 80.0]])
    obs = Observations(
        labels=np.array([0]), target_logits=target, reference_logits=np.zeros((0, 1, 2))
    )
    assert ModifiedEntropyAttack().score(obs)[0] == pytest.approx(-math.log(160.0), rel=1e-12)
