from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import Observations
from objectives.attacks import ConfidenceAttack


def test_hand_worked_scores() -> None:
    # (2, 0): max logit 2 - logsumexp(0) = 2           (p_max = 0.8808)
    # (0, 1): max logit 1 - 0 = 1                      (p_max = 0.7311), true label ignored
    # (3, 3): 3 - 3 = 0                                (p_max = 0.5)
    # (1, 2, 0): 2 - log(e + 1) = 2 - 1.313262 = 0.686738
    target = np.array(
        [[2.0, 0.0, -np.inf], [0.0, 1.0, -np.inf], [3.0, 3.0, -np.inf], [1.0, 2.0, 0.0]]
    )
    obs = Observations(
        labels=np.array([1, 0, 0, 2]), target_logits=target, reference_logits=np.zeros((0, 4, 3))
    )
    np.testing.assert_allclose(
        ConfidenceAttack().score(obs), [2.0, 1.0, 0.0, 2.0 - math.log1p(math.e)], rtol=1e-14
    )


def test_score_is_the_log_odds_of_the_top_probability() -> None:
    target = np.array([[0.5, -0.2, 1.1]])
    p = np.exp(target) / np.exp(target).sum()
    obs = Observations(
        labels=np.array([0]), target_logits=target, reference_logits=np.zeros((0, 1, 3))
    )
    assert ConfidenceAttack().score(obs)[0] == pytest.approx(
        np.log(p.max() / (1 - p.max())), rel=1e-12
    )
