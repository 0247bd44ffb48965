from __future__ import annotations

import math

import numpy as np
import pytest

from objectives import (
    ACCESS_MODES,
    Observations,
    logit_scaled_confidence,
    restrict_to_access,
    true_class_log_prob,
)
from objectives.signals import class_logit_scaled_confidences


def _obs() -> Observations:
    return Observations(
        labels=np.array([0, 2]),
        target_logits=np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]),
        reference_logits=np.array([[[3.0, 0.0, 0.0], [0.0, 0.0, 4.0]]]),
    )


class TestTrueClassLogProb:
    def test_hand_value(self) -> None:
        # log p_0 of logits (2, 0) = 2 - log(e^2 + 1) = -log(1 + e^-2) = -0.1269280110
        got = true_class_log_prob(np.array([[2.0, 0.0]]), np.array([0]))
        assert got[0] == pytest.approx(-math.log1p(math.exp(-2.0)), rel=1e-14)

    def test_large_logits_do_not_overflow(self) -> None:
        # naive exp(1000) overflows; log p_1 of (1000, 0) = -1000 - log(1 + e^-1000) = -1000
        got = true_class_log_prob(np.array([[1000.0, 0.0]]), np.array([1]))
        assert got[0] == pytest.approx(-1000.0, rel=1e-15)

    def test_broadcasts_over_reference_models(self) -> None:
        logits = np.array([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])  # K=2, n=1, C=2
        got = true_class_log_prob(logits, np.array([0]))
        # p = 1/2 and 3/4
        np.testing.assert_allclose(got, [[math.log(0.5)], [math.log(0.75)]], rtol=1e-14)


class TestLogitScaledConfidence:
    def test_three_class_hand_value(self) -> None:
        # φ = 1 - log(e^2 + e^3) = 1 - 3 - log(1 + e^-1) = -2 - 0.3132616875 = -2.3132616875
        got = logit_scaled_confidence(np.array([[1.0, 2.0, 3.0]]), np.array([0]))
        assert got[0] == pytest.approx(-2.0 - math.log1p(math.exp(-1.0)), rel=1e-14)

    def test_equals_log_odds_of_true_class(self) -> None:
        logits = np.array([[0.3, -1.2, 2.0], [1.0, 1.0, 1.0]])
        labels = np.array([2, 1])
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        p_y = p[np.arange(2), labels]
        np.testing.assert_allclose(
            logit_scaled_confidence(logits, labels), np.log(p_y / (1 - p_y)), rtol=1e-12
        )

    def test_does_not_saturate(self) -> None:
        # p_y rounds to 1.0 in float64 for both records, yet φ keeps the margins 40 and 50
        logits = np.array([[40.0, 0.0], [50.0, 0.0]])
        softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        assert softmax[0, 0] == softmax[1, 0] == 1.0
        np.testing.assert_array_equal(
            logit_scaled_confidence(logits, np.array([0, 0])), [40.0, 50.0]
        )

    def test_every_class(self) -> None:
        # φ_0 = log 3 - log 1 for p = (3/4, 1/4); φ_1 = -log 3
        got = class_logit_scaled_confidences(np.array([[math.log(3.0), 0.0]]))
        np.testing.assert_allclose(got, [[math.log(3.0), -math.log(3.0)]], rtol=1e-14)

    def test_rejects_labels_out_of_range(self) -> None:
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\), but got 0..2"):
            logit_scaled_confidence(np.zeros((2, 2)), np.array([0, 2]))

    def test_rejects_mismatched_shapes(self) -> None:
        with pytest.raises(ValueError, match="labels shape"):
            true_class_log_prob(np.zeros((3, 2)), np.array([0, 1]))


class TestRestrictToAccess:
    @pytest.mark.parametrize("access", ["probs", "logits"])
    def test_full_access_is_unchanged(self, access: str) -> None:
        obs = _obs()
        assert restrict_to_access(obs, access) is obs

    def test_label_access_keeps_only_the_predicted_label(self) -> None:
        got = restrict_to_access(_obs(), "label")
        np.testing.assert_array_equal(got.target_logits, [[0, 0, 1], [1, 0, 0]])
        np.testing.assert_array_equal(got.reference_logits, [[[1, 0, 0], [0, 0, 1]]])
        np.testing.assert_array_equal(got.labels, [0, 2])

    def test_label_access_without_reference_models(self) -> None:
        obs = Observations(
            labels=np.array([1]),
            target_logits=np.array([[0.0, 5.0]]),
            reference_logits=np.zeros((0, 1, 2)),
        )
        got = restrict_to_access(obs, "label")
        assert got.reference_logits.shape == (0, 1, 2)

    def test_unknown_access_lists_allowed_values(self) -> None:
        with pytest.raises(ValueError) as info:
            restrict_to_access(_obs(), "gradients")
        assert str(info.value) == (
            "access must be one of ['probs', 'logits', 'label'], but got access='gradients'"
        )
        assert ACCESS_MODES == ("probs", "logits", "label")
