"""The loss-threshold attack (Yeom et al., CSF 2018)."""

from __future__ import annotations

import numpy as np

from objectives.attacks._base import Attack, register
from objectives.observations import Observations
from objectives.signals import logit_scaled_confidence


@register
class LossAttack(Attack):
    """Members have lower loss: claim membership when the loss is small.

    Yeom et al. ("Privacy Risk in Machine Learning: Analyzing the Connection
    to Overfitting", CSF 2018) threshold the cross-entropy loss
    ``-log p_y``. The score returned here is LiRA's logit-scaled confidence
    ``φ = log(p_y / (1 - p_y))``, a strictly decreasing function of the loss
    (``loss = log(1 + e^{-φ})``), so it ranks records exactly as ``-loss``
    does and every threshold on one is a threshold on the other. Unlike
    ``-loss`` it does not saturate: ``-loss`` rounds to 0.0 for every
    record the model fits with ``p_y`` within 1e-16 of 1, which would turn
    the most telling records into ties.

    Example:
        >>> obs = Observations(labels=np.array([0]), target_logits=np.array([[2.0, 0.0]]),
        ...                    reference_logits=np.zeros((0, 1, 2)))
        >>> LossAttack().score(obs).round(3)
        array([2.])
    """

    name = "loss"

    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        return logit_scaled_confidence(records.target_logits, records.labels)
