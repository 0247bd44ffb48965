"""What the attacker can read from a model's output, and stable per-record signals.

The threat model's ``access`` says what an attacker sees when it queries the
target: full logits, probabilities, or only the predicted label.
:func:`restrict_to_access` maps :class:`~objectives.observations.Observations`
to exactly that, so every attack downstream is automatically limited to it.

Signals are computed from logits in log space. Probabilities of a well-fitted
model saturate at 1.0 in float64 long before the logits stop growing; scores
computed from saturated probabilities collapse into ties and hide differences
an attacker could see. LiRA's logit-scaled confidence
``φ = log(p_y / (1 - p_y))`` is computed directly from logits and never saturates.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from objectives.observations import Observations

ACCESS_MODES = ("probs", "logits", "label")


def restrict_to_access(obs: Observations, access: str) -> Observations:
    """Keep only what an attacker with ``access`` can observe.

    ``"logits"`` and ``"probs"`` return ``obs`` unchanged: logits are
    recoverable from probabilities up to an additive constant per record,
    which no attack here depends on, so both carry the same information; the
    attacks compute from logits for stability. ``"label"`` replaces every model's logits (target and
    references) by a one-hot vector of its predicted class, so only the
    predicted label is usable.

    Args:
        obs: the full observations.
        access: one of :data:`ACCESS_MODES`.

    Returns:
        The observations the attacker is allowed to use.

    Raises:
        ValueError: if ``access`` is not one of :data:`ACCESS_MODES`.

    Example:
        >>> obs = Observations(labels=np.array([0]), target_logits=np.array([[0.2, 3.0]]),
        ...                    reference_logits=np.zeros((0, 1, 2)))
        >>> restrict_to_access(obs, "label").target_logits
        array([[0., 1.]])
    """
    if access not in ACCESS_MODES:
        raise ValueError(f"access must be one of {list(ACCESS_MODES)}, but got access={access!r}")
    if access != "label":
        return obs
    return obs.with_logits(
        target_logits=_one_hot_argmax(obs.target_logits),
        reference_logits=_one_hot_argmax(obs.reference_logits),
    )


def true_class_log_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Log softmax probability of each record's true class, ``log p_y``.

    Computed as ``logit_y - logsumexp(logits)``, which neither overflows nor
    takes the log of an underflowed probability.

    Args:
        logits: shape ``(..., n, C)``; leading axes (e.g. K reference models)
            are broadcast against ``labels``.
        labels: true classes, shape ``(n,)``.

    Returns:
        float64 array of shape ``logits.shape[:-1]``.
    """
    logits, labels = _as_logits_and_labels(logits, labels)
    true = _take_true(logits, labels)
    return true - logsumexp(logits, axis=-1)


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled confidence ``φ = log(p_y / (1 - p_y))`` (Carlini et al. 2022).

    Computed as ``logit_y - logsumexp_{j != y} logit_j``, exact and free of
    saturation: a model that is "100 % sure" in float64 probabilities still
    gets distinct φ values for different margins. φ is strictly increasing in
    ``p_y``, hence strictly decreasing in the cross-entropy loss.

    Args:
        logits: shape ``(..., n, C)`` with ``C >= 2``.
        labels: true classes, shape ``(n,)``.

    Returns:
        float64 array of shape ``logits.shape[:-1]``.
    """
    logits, labels = _as_logits_and_labels(logits, labels)
    true = _take_true(logits, labels)
    others = logits.copy()
    np.put_along_axis(others, _label_index(logits, labels), -np.inf, axis=-1)
    return true - logsumexp(others, axis=-1)


def class_logit_scaled_confidences(logits: np.ndarray) -> np.ndarray:
    """``φ_j = logit_j - logsumexp_{k != j} logit_k`` for every class ``j``.

    ``p_j = expit(φ_j)`` and ``1 - p_j = expit(-φ_j)``, so every quantity an
    attack needs about class ``j`` can be computed stably from φ_j.

    Args:
        logits: shape ``(..., C)`` with ``C >= 2``.

    Returns:
        float64 array of the same shape.
    """
    logits = np.asarray(logits, dtype=np.float64)
    n_classes = logits.shape[-1]
    if n_classes < 2:
        raise ValueError(f"logits need at least 2 classes, but got shape {logits.shape}")
    phi = np.empty_like(logits)
    for j in range(n_classes):
        others = np.delete(logits, j, axis=-1)
        phi[..., j] = logits[..., j] - logsumexp(others, axis=-1)
    return phi


def _one_hot_argmax(logits: np.ndarray) -> np.ndarray:
    one_hot = np.zeros_like(logits, dtype=np.float64)
    if logits.size:
        np.put_along_axis(one_hot, np.argmax(logits, axis=-1)[..., None], 1.0, axis=-1)
    return one_hot


def _as_logits_and_labels(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim < 2 or labels.shape != logits.shape[-2:-1]:
        raise ValueError(
            f"logits must have shape (..., n, C) and labels shape (n,), but got "
            f"{logits.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[-1]):
        raise ValueError(
            f"labels must lie in [0, {logits.shape[-1]}), but got {labels.min()}..{labels.max()}"
        )
    return logits, labels


def _label_index(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.broadcast_to(labels[:, None], (*logits.shape[:-1], 1))


def _take_true(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.take_along_axis(logits, _label_index(logits, labels), axis=-1)[..., 0]
