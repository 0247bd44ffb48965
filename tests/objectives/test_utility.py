from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import UTILITY_METRICS, utility_metric


def _logits(predicted: list[int], n_classes: int = 2) -> np.ndarray:
    return np.eye(n_classes)[predicted] * 3.0


class TestAccuracy:
    def test_hand_value(self) -> None:
        # predictions (0, 1, 0, 0) against (0, 1, 1, 0): 3 of 4
        assert (
            utility_metric("accuracy").score(np.array([0, 1, 1, 0]), _logits([0, 1, 0, 0])) == 0.75
        )

    def test_wilson_interval(self) -> None:
        # 3/4, z = 1.959964: centre (0.75 + z²/8)/(1 + z²/4) = 0.627530,
        # half z/(1 + z²/4)·sqrt(0.046875 + z²/64) = 0.326883 -> (0.300642, 0.954413)
        z = 1.959963984540054
        centre = (0.75 + z * z / 8) / (1 + z * z / 4)
        half = z / (1 + z * z / 4) * math.sqrt(0.75 * 0.25 / 4 + z * z / 64)
        low, high = utility_metric("accuracy").interval(
            np.array([0, 1, 1, 0]), _logits([0, 1, 0, 0])
        )
        assert (low, high) == pytest.approx((centre - half, centre + half), rel=1e-9)
        assert (low, high) == pytest.approx((0.300642, 0.954413), abs=1e-6)


class TestBalancedAccuracy:
    def test_hand_value(self) -> None:
        # class 0 recall 2/3, class 1 recall 1/1 -> (2/3 + 1)/2 = 5/6
        got = utility_metric("balanced_accuracy").score(
            np.array([0, 0, 0, 1]), _logits([0, 0, 1, 1])
        )
        assert got == pytest.approx(5 / 6, rel=1e-14)

    def test_multiclass(self) -> None:
        # recalls: class 0 1/1, class 1 0/1, class 2 1/1 -> 2/3
        got = utility_metric("balanced_accuracy").score(np.array([0, 1, 2]), _logits([0, 0, 2], 3))
        assert got == pytest.approx(2 / 3, rel=1e-14)

    def test_bootstrap_interval_is_seeded_and_brackets_the_value(
        self, rng: np.random.Generator
    ) -> None:
        labels = rng.integers(0, 3, size=300)
        predicted = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 3, size=300))
        metric = utility_metric("balanced_accuracy")
        logits = _logits(predicted.tolist(), 3)
        low, high = metric.interval(labels, logits)
        assert (low, high) == metric.interval(labels, logits)
        assert 0.0 <= low < metric.score(labels, logits) < high <= 1.0


class TestRocAuc:
    def test_hand_value(self) -> None:
        # margins (0.1, 0.4 | 0.35, 0.8) for labels (0, 0 | 1, 1): pairs 0.35>0.1, 0.8>0.1,
        # 0.8>0.4 win, 0.35<0.4 loses -> 3/4
        margins = np.array([0.1, 0.4, 0.35, 0.8])
        logits = np.stack([np.zeros(4), margins], axis=1)
        assert utility_metric("roc_auc").score(np.array([0, 0, 1, 1]), logits) == 0.75

    def test_refuses_multiclass(self) -> None:
        with pytest.raises(ValueError) as info:
            utility_metric("roc_auc").score(np.array([0, 1, 2]), np.eye(3))
        assert str(info.value) == (
            "roc_auc is defined for binary classification only, but got 3 classes; "
            "use 'accuracy' or 'balanced_accuracy'"
        )
        assert utility_metric("roc_auc").requires_binary

    def test_refuses_one_class(self) -> None:
        with pytest.raises(ValueError, match="both classes"):
            utility_metric("roc_auc").score(np.array([1, 1]), np.zeros((2, 2)))

    def test_bootstrap_interval(self, rng: np.random.Generator) -> None:
        labels = rng.integers(0, 2, size=400)
        logits = np.stack([np.zeros(400), labels + rng.normal(size=400)], axis=1)
        metric = utility_metric("roc_auc")
        low, high = metric.interval(labels, logits)
        assert low < metric.score(labels, logits) < high


def test_registry_and_unknown_name() -> None:
    assert sorted(UTILITY_METRICS) == ["accuracy", "balanced_accuracy", "roc_auc"]
    with pytest.raises(ValueError) as info:
        utility_metric("f1")
    assert str(info.value) == (
        "unknown utility metric 'f1'; allowed metrics are "
        "['accuracy', 'balanced_accuracy', 'roc_auc']"
    )


def test_shape_errors_name_the_metric() -> None:
    with pytest.raises(ValueError, match=r"accuracy needs labels of shape \(n,\)"):
        utility_metric("accuracy").score(np.array([0, 1]), np.zeros((3, 2)))
