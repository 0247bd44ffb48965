from __future__ import annotations

import math

import numpy as np

from objectives import Observations, restrict_to_access
from objectives.attacks import LossAttack


def _obs(logits: list[list[float]], labels: list[int]) -> Observations:
    target = np.array(logits)
    return Observations(
        labels=np.array(labels),
        target_logits=target,
        reference_logits=np.zeros((0, *target.shape)),
    )


def test_hand_worked_scores_rank_as_minus_loss() -> None:
    # record 0: logits (2, 0), y = 0: φ = 2 - 0 = 2,  loss = log(1 + e^-2) = 0.126928
    # record 1: logits (0, 1), y = 0: φ = 0 - 1 = -1, loss = log(1 + e^1)  = 1.313262
    # record 2: logits (1, 1, 0), y = 2: φ = 0 - log(2e) = -1.693147, loss = log(1 + 2e) = 1.861995
    obs = _obs([[2.0, 0.0, -np.inf], [0.0, 1.0, -np.inf], [1.0, 1.0, 0.0]], [0, 0, 2])
    scores = LossAttack().score(obs)
    np.testing.assert_allclose(scores, [2.0, -1.0, -1.0 - math.log(2.0)], rtol=1e-14)
    losses = np.log1p(np.exp(-scores))
    np.testing.assert_allclose(
        losses, [math.log1p(math.exp(-2)), math.log1p(math.e), math.log1p(2 * math.e)], rtol=1e-12
    )


def test_saturated_records_are_not_tied() -> None:
    # both have p_y == 1.0 in float64 (loss 0.0 naively); φ keeps them apart
    scores = LossAttack().score(_obs([[40.0, 0.0], [45.0, 0.0]], [0, 0]))
    np.testing.assert_array_equal(scores, [40.0, 45.0])


def test_label_access_sees_only_correctness() -> None:
    # one-hot logits: correct prediction (1, 0) with y = 0 -> φ = 1; wrong (0, 1) -> φ = -1,
    # however confident the model was
    obs = restrict_to_access(_obs([[9.0, 0.0], [0.2, 0.1], [0.0, 3.0]], [0, 0, 0]), "label")
    np.testing.assert_array_equal(LossAttack().score(obs), [1.0, 1.0, -1.0])
