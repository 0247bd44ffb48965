"""The modified-entropy attack (Song & Mittal, USENIX Security 2021)."""

from __future__ import annotations

import numpy as np
from scipy.special import log_expit, logsumexp

from objectives.attacks._base import Attack, register
from objectives.observations import Observations
from objectives.signals import class_logit_scaled_confidences


@register
class ModifiedEntropyAttack(Attack):
    """Members have low modified entropy (Mentr) of their prediction.

    Song & Mittal ("Systematic Evaluation of Privacy Risks of Machine
    Learning Models", USENIX Security 2021, Eq. 3) define

        Mentr(F(x), y) = -(1 - p_y) log p_y - Σ_{j≠y} p_j log(1 - p_j),

    which is small both when the model is confident in the true class and
    large when it is confident in a wrong one (plain entropy cannot tell the
    two apart). Their attack claims membership when Mentr is small.

    The score returned is ``-log Mentr``, a strictly decreasing function of
    Mentr, so it ranks records exactly as ``-Mentr`` does. Every term is
    computed in log space from ``φ_j = logit_j - logsumexp_{k≠j} logit_k``
    (``log p_j = log_expit(φ_j)``, ``log(1 - p_j) = log_expit(-φ_j)``), so no
    probability needs clipping away from 0 or 1, and the log keeps tiny Mentr
    values (confidently fitted records, Mentr ≈ e^{-2φ_y}) distinct instead of
    underflowing to ties at 0.

    Example:
        >>> obs = Observations(labels=np.array([0]), target_logits=np.array([[0.0, 0.0]]),
        ...                    reference_logits=np.zeros((0, 1, 2)))
        >>> ModifiedEntropyAttack().score(obs).round(4)  # p = (½, ½): Mentr = log 2
        array([0.3665])
    """

    name = "modified_entropy"

    def score(self, records: Observations, population: Observations | None = None) -> np.ndarray:
        return -log_modified_entropy(logits=records.target_logits, labels=records.labels)


def log_modified_entropy(*, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log Mentr(F(x), y)`` per record, computed stably from logits.

    Args:
        logits: shape ``(n, C)``, ``C >= 2``.
        labels: true classes, shape ``(n,)``.

    Returns:
        float64 array of shape ``(n,)``.
    """
    phi = class_logit_scaled_confidences(logits)
    is_true = np.arange(phi.shape[-1]) == np.asarray(labels)[:, None]
    # True class:  (1 - p_y) * (-log p_y)      = expit(-φ_y) * softplus(-φ_y)
    # Other class: p_j * (-log(1 - p_j))       = expit(φ_j)  * softplus(φ_j)
    signed = np.where(is_true, -phi, phi)
    log_terms = log_expit(signed) + _log_softplus(signed)
    return logsumexp(log_terms, axis=-1)


def _log_softplus(x: np.ndarray) -> np.ndarray:
    """``log(log(1 + e^x))`` without underflow: ≈ ``x`` once ``e^x`` is tiny."""
    out = np.array(x, dtype=np.float64, copy=True)
    moderate = x > -30.0  # below this, log1p(e^x) = e^x to double precision
    out[moderate] = np.log(np.logaddexp(0.0, x[moderate]))
    return out
