"""Utility metrics: how useful the defended model still is, with an interval.

The tuner ranks defenses by validation utility and treats two defenses
whose utilities fall within each other's interval as tied, so every metric
returns an interval along with its value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from objectives.stats import binomial_interval

BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0


class UtilityMetric(ABC):
    """A utility metric computed from true labels and a model's logits.

    Contract:
        * :meth:`score` and :meth:`interval` take ``labels`` of shape ``(n,)``
          and ``logits`` of shape ``(n, C)``; higher is better.
        * :meth:`interval` is deterministic (bootstraps use a fixed seed), so
          a rerun of the same study reproduces its tie margins.
        * ``requires_binary`` metrics raise ``ValueError`` when ``C != 2``.
    """

    name: ClassVar[str]
    requires_binary: ClassVar[bool] = False

    @abstractmethod
    def score(self, labels: np.ndarray, logits: np.ndarray) -> float:
        """The metric's value."""

    def interval(
        self, labels: np.ndarray, logits: np.ndarray, *, confidence: float = 0.95
    ) -> tuple[float, float]:
        """A ``confidence`` interval; by default a seeded percentile bootstrap over records."""
        labels, logits = self._check(labels, logits)
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        values = []
        for _ in range(BOOTSTRAP_RESAMPLES):
            index = rng.integers(0, labels.size, size=labels.size)
            if np.unique(labels[index]).size < 2:
                continue  # a resample with one class has no balanced accuracy / AUC
            values.append(self.score(labels[index], logits[index]))
        if not values:
            return 0.0, 1.0
        tail = (1.0 - confidence) / 2.0
        low, high = np.quantile(values, [tail, 1.0 - tail])
        return float(low), float(high)

    def _check(self, labels: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels = np.asarray(labels, dtype=np.int64)
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or labels.shape != (logits.shape[0],) or labels.size == 0:
            raise ValueError(
                f"{self.name} needs labels of shape (n,) and logits of shape (n, C) with n >= 1, "
                f"but got {labels.shape} and {logits.shape}"
            )
        if self.requires_binary and (logits.shape[1] != 2 or labels.min() < 0 or labels.max() > 1):
            raise ValueError(
                f"{self.name} is defined for binary classification only, but got "
                f"{logits.shape[1]} classes; use 'accuracy' or 'balanced_accuracy'"
            )
        return labels, logits

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


UTILITY_METRICS: dict[str, type[UtilityMetric]] = {}


def register_utility(cls: type[UtilityMetric]) -> type[UtilityMetric]:
    """Class decorator: make a utility metric selectable by its ``name``."""
    UTILITY_METRICS[cls.name] = cls
    return cls


def utility_metric(name: str) -> UtilityMetric:
    """The registered metric ``name``; unknown names list the allowed ones."""
    try:
        return UTILITY_METRICS[name]()
    except KeyError:
        raise ValueError(
            f"unknown utility metric {name!r}; allowed metrics are {sorted(UTILITY_METRICS)}"
        ) from None


@register_utility
class Accuracy(UtilityMetric):
    """Fraction of records whose argmax class is the true class; Wilson interval.

    Example:
        >>> Accuracy().score(np.array([0, 1]), np.array([[1.0, 0.0], [1.0, 0.0]]))
        0.5
    """

    name = "accuracy"

    def score(self, labels: np.ndarray, logits: np.ndarray) -> float:
        labels, logits = self._check(labels, logits)
        return float(np.mean(np.argmax(logits, axis=1) == labels))

    def interval(
        self, labels: np.ndarray, logits: np.ndarray, *, confidence: float = 0.95
    ) -> tuple[float, float]:
        labels, logits = self._check(labels, logits)
        correct = int(np.count_nonzero(np.argmax(logits, axis=1) == labels))
        return binomial_interval(
            successes=correct, trials=labels.size, confidence=confidence, method="wilson"
        )


@register_utility
class BalancedAccuracy(UtilityMetric):
    """Mean per-class recall of the argmax prediction; bootstrap interval."""

    name = "balanced_accuracy"

    def score(self, labels: np.ndarray, logits: np.ndarray) -> float:
        labels, logits = self._check(labels, logits)
        return float(balanced_accuracy_score(labels, np.argmax(logits, axis=1)))


@register_utility
class RocAuc(UtilityMetric):
    """ROC AUC of the positive-class margin ``logit_1 − logit_0`` (binary only); bootstrap interval.

    The margin is a strictly increasing function of ``p_1``, so the AUC is
    the AUC of the probabilities, without their saturation ties.
    """

    name = "roc_auc"
    requires_binary = True

    def score(self, labels: np.ndarray, logits: np.ndarray) -> float:
        labels, logits = self._check(labels, logits)
        if np.unique(labels).size < 2:
            raise ValueError("roc_auc needs records of both classes, but got only one class")
        return float(roc_auc_score(labels, logits[:, 1] - logits[:, 0]))
