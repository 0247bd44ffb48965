"""The confidence-threshold attack (Yeom et al., CSF 2018; Salem et al., NDSS 2019)."""

from __future__ import annotations

import numpy as np

from objectives.attacks._base import Attack, register
from objectives.observations import Observations
from objectives.signals import logit_scaled_confidence


@register
class ConfidenceAttack(Attack):
    """Members get more confident predictions: threshold the top probability.

    The attack needs no true label: its signal is ``max_j p_j``. The score
    returned is the logit-scaled top confidence
    ``max_j logit_j - logsumexp_{k != argmax} logit_k = log(p_max / (1 - p_max))``,
    strictly increasing in ``p_max``, so it ranks records exactly as the top
    probability does without saturating at 1.0.

    Example:
        >>> obs = Observations(labels=np.array([1]), target_logits=np.array([[2.0, 0.0]]),
        ...                    reference_logits=np.zeros((0, 1, 2)))
        >>> ConfidenceAttack().score(obs).round(3)
        array([2.])
    """

    name = "confidence"

    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        predicted = np.argmax(records.target_logits, axis=-1)
        return logit_scaled_confidence(records.target_logits, predicted)
