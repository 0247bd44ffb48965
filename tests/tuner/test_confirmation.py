"""The predicted utility of one new training run of the recommended defense."""

from __future__ import annotations

import math

import pytest

from tuner.confirmation import utility_prediction_interval


def test_prediction_interval_adds_training_and_test_spread():
    # Hand computation: mean 0.92, s = 0.02 (k = 3), t(0.975, 2) = 4.302653;
    # training part (4.302653·0.02)²·(1 + 1/3) = 0.00987372;
    # each test interval is 0.04 wide → z·σ_test = 0.02 → 0.0004;
    # half-width √0.01027372 = 0.101359 → [0.818641, 1.021359] → clipped to 1.
    low, high = utility_prediction_interval([0.90, 0.92, 0.94], [(0.88, 0.92), (0.90, 0.94), (0.92, 0.96)])
    assert low == pytest.approx(0.92 - math.sqrt(0.00987372 + 0.0004), abs=1e-5)
    assert high == 1.0


def test_identical_retrains_keep_the_test_sampling_interval():
    # No training spread: only ±z·σ_test = ±0.03 around 0.8, equal to the retrains' own interval.
    low, high = utility_prediction_interval([0.8, 0.8], [(0.77, 0.83), (0.77, 0.83)])
    assert (low, high) == (pytest.approx(0.77), pytest.approx(0.83))


def test_the_interval_contains_every_retrains_own_interval():
    low, high = utility_prediction_interval([0.5], [(0.40, 0.62)])
    assert low <= 0.40 and high >= 0.62
