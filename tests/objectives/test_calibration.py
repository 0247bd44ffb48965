from __future__ import annotations

import numpy as np
import pytest

from objectives import Threshold, calibrate_threshold, claim_probabilities, expected_claims


class TestCalibrateThreshold:
    SCORES = np.array([1.0, 2.0, 2.0, 3.0])

    def test_tie_block_is_split(self) -> None:
        # P(>2) = 1/4 ≤ 0.5 < P(>1) = 3/4: value 2, tie fraction (0.5 - 0.25)/0.5 = 0.5
        assert calibrate_threshold(self.SCORES, alpha=0.5) == Threshold(value=2.0, tie_fraction=0.5)

    def test_exact_quantile_needs_no_tie_break(self) -> None:
        # P(>2) = 0.25 ≤ 0.25: value 2 claims only the 3; tie fraction (0.25 - 0.25)/0.5 = 0
        assert calibrate_threshold(self.SCORES, alpha=0.25) == Threshold(
            value=2.0, tie_fraction=0.0
        )

    def test_below_the_top_score(self) -> None:
        # P(>2) = 0.25 > 0.1, P(>3) = 0 ≤ 0.1: value 3, tie fraction 0.1/0.25 = 0.4
        threshold = calibrate_threshold(self.SCORES, alpha=0.1)
        assert threshold.value == 3.0
        assert threshold.tie_fraction == pytest.approx(0.4, rel=1e-14)

    def test_alpha_zero_claims_no_calibration_record(self) -> None:
        threshold = calibrate_threshold(self.SCORES, alpha=0.0)
        assert threshold == Threshold(value=3.0, tie_fraction=0.0)
        assert expected_claims(self.SCORES, threshold) == 0.0

    def test_alpha_one_claims_every_calibration_record(self) -> None:
        threshold = calibrate_threshold(self.SCORES, alpha=1.0)
        assert threshold == Threshold(value=1.0, tie_fraction=1.0)
        assert expected_claims(self.SCORES, threshold) == 4.0

    def test_constant_scores_claim_alpha_of_every_record(self) -> None:
        threshold = calibrate_threshold(np.full(7, 0.25), alpha=0.1)
        assert threshold == Threshold(value=0.25, tie_fraction=pytest.approx(0.1, rel=1e-14))
        assert expected_claims(np.full(1000, 0.25), threshold) == pytest.approx(100.0, rel=1e-12)

    def test_float_rounding_of_alpha_n_is_snapped(self) -> None:
        # 0.29·100 = 28.999999999999996 in float64; 29 scores lie above 70
        threshold = calibrate_threshold(np.arange(100.0), alpha=0.29)
        assert threshold == Threshold(value=70.0, tie_fraction=0.0)

    @pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.1, 0.3, 0.77])
    def test_expected_claim_rate_on_calibration_is_exactly_alpha(
        self, alpha: float, rng: np.random.Generator
    ) -> None:
        scores = rng.integers(0, 25, size=997).astype(float)  # many ties
        threshold = calibrate_threshold(scores, alpha=alpha)
        assert 0.0 <= threshold.tie_fraction <= 1.0
        assert expected_claims(scores, threshold) == pytest.approx(alpha * 997, rel=1e-9)

    def test_rejects_empty_scores(self) -> None:
        with pytest.raises(ValueError, match="at least one calibration score"):
            calibrate_threshold(np.array([]), alpha=0.1)

    def test_rejects_nan(self) -> None:
        with pytest.raises(ValueError, match="scores contain NaN"):
            calibrate_threshold(np.array([0.0, np.nan]), alpha=0.1)

    def test_rejects_alpha_out_of_range(self) -> None:
        with pytest.raises(ValueError) as info:
            calibrate_threshold(self.SCORES, alpha=1.5)
        assert str(info.value) == "alpha must be in [0, 1], but got alpha=1.5"


class TestClaims:
    def test_expected_claims_counts_ties_fractionally(self) -> None:
        # above 2: {3, 4} = 2; at 2: three records · 0.25 = 0.75
        threshold = Threshold(value=2.0, tie_fraction=0.25)
        assert expected_claims(np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0]), threshold) == 2.75

    def test_claim_probabilities(self) -> None:
        threshold = Threshold(value=2.0, tie_fraction=0.25)
        np.testing.assert_array_equal(
            claim_probabilities(np.array([1.0, 2.0, 3.0]), threshold), [0.0, 0.25, 1.0]
        )
