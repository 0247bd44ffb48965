"""Randomized Neyman–Pearson thresholds chosen on the attacker's own non-members.

An attacker who aims for false-positive rate α picks its threshold on
records it knows are non-members (a calibration part of its own pool), never
on members or on the evaluation non-members. Scores tie (label-only access,
RMIA's fractions, identical predictions), and a deterministic threshold can
then only hit the rates between tie blocks. A randomized threshold breaks
ties without bias: above ``value`` always claim, at ``value`` claim with
probability ``tie_fraction``, so the expected claim rate on the calibration
scores is exactly α. Claims are counted as expectations, so results are
deterministic and need no random seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Threshold:
    """Claim "member" when ``score > value``; with probability ``tie_fraction`` when equal.

    Example:
        >>> t = calibrate_threshold(np.array([1.0, 2.0, 2.0, 3.0]), alpha=0.5)
        >>> t
        Threshold(value=2.0, tie_fraction=0.5)
        >>> expected_claims(np.array([1.0, 2.0, 2.0, 3.0]), t)
        2.0
    """

    value: float
    tie_fraction: float


def calibrate_threshold(scores: np.ndarray, *, alpha: float) -> Threshold:
    """The randomized threshold whose expected claim rate on ``scores`` is ``alpha``.

    ``value`` is the smallest observed score ``s`` with ``P(score > s) ≤ α``;
    ``tie_fraction = (α − P(score > value)) / P(score == value)`` makes up
    the rest of α from the records tied at ``value``.

    Args:
        scores: membership scores of known non-members, shape ``(n,)``, ``n ≥ 1``.
        alpha: target false-positive rate, ``0 ≤ α ≤ 1``.

    Returns:
        The :class:`Threshold`.
    """
    scores = _as_scores(scores, "scores")
    if scores.size == 0:
        raise ValueError("calibrate_threshold needs at least one calibration score, but got none")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], but got alpha={alpha!r}")
    values, counts = np.unique(scores, return_counts=True)  # ascending
    greater = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]])  # #scores > values[i]
    target = _snap(alpha * scores.size)
    index = int(np.argmax(greater <= target))  # first (smallest) value with few enough above it
    tie_fraction = (target - greater[index]) / counts[index]
    return Threshold(
        value=float(values[index]), tie_fraction=float(min(1.0, max(0.0, tie_fraction)))
    )


def claim_probabilities(scores: np.ndarray, threshold: Threshold) -> np.ndarray:
    """Probability that the attacker claims each record: 1, ``tie_fraction`` or 0."""
    scores = _as_scores(scores, "scores")
    return np.where(
        scores > threshold.value,
        1.0,
        np.where(scores == threshold.value, threshold.tie_fraction, 0.0),
    )


def expected_claims(scores: np.ndarray, threshold: Threshold) -> float:
    """Expected number of claims: ``Σ 1[s > value] + tie_fraction·Σ 1[s == value]``."""
    scores = _as_scores(scores, "scores")
    above = int(np.count_nonzero(scores > threshold.value))
    tied = int(np.count_nonzero(scores == threshold.value))
    return above + threshold.tie_fraction * tied


def _as_scores(scores: np.ndarray, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, but got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{name} contain NaN; attacks must return a number for every record")
    return scores


def _snap(count: float) -> float:
    """Round α·n to the nearest integer when it is one up to float error (0.29·100)."""
    nearest = round(count)
    return float(nearest) if abs(count - nearest) <= 1e-9 * max(1.0, count) else count
