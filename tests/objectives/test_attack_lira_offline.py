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
