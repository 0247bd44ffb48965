from __future__ import annotations

import math

import pytest
from scipy.stats import beta

from objectives import (
    binomial_interval,
    break_even_prior,
    dp_ppv_bound,
    ppv,
    ppv_interval,
    realistic_advantage,
)


class TestBinomialInterval:
    def test_clopper_pearson_zero_successes_closed_form(self) -> None:
        # x = 0: low = 0, high solves (1 - p)^n = 0.025  ->  1 - 0.025^(1/10) = 0.3084971079
        low, high = binomial_interval(successes=0, trials=10)
        assert low == 0.0
        assert high == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12)

    def test_clopper_pearson_all_successes_closed_form(self) -> None:
        # x = n: high = 1, low solves p^n = 0.025  ->  0.025^(1/10) = 0.6915028921
        low, high = binomial_interval(successes=10, trials=10)
        assert low == pytest.approx(0.025 ** (1 / 10), rel=1e-12)
        assert high == 1.0

    def test_clopper_pearson_is_the_beta_quantile(self) -> None:
        # interior x: Beta(x, n - x + 1) at 2.5 %, Beta(x + 1, n - x) at 97.5 %
        low, high = binomial_interval(successes=3, trials=20)
        assert low == pytest.approx(beta.ppf(0.025, 3, 18), rel=1e-12)
        assert high == pytest.approx(beta.ppf(0.975, 4, 17), rel=1e-12)

    def test_wilson_hand_value(self) -> None:
        # 8/10, z = 1.959964: centre = (0.8 + z²/20)/(1 + z²/10) = 0.716740,
        # half = z/(1 + z²/10)·sqrt(0.016 + z²/400) = 0.226578  ->  (0.49016, 0.94332)
        low, high = binomial_interval(successes=8, trials=10, method="wilson")
        assert low == pytest.approx(0.4901625, abs=1e-6)
        assert high == pytest.approx(0.9433178, abs=1e-6)

    def test_fractional_successes_lie_between_neighbours(self) -> None:
        two = binomial_interval(successes=2, trials=50)
        half = binomial_interval(successes=2.5, trials=50)
        three = binomial_interval(successes=3, trials=50)
        assert two[0] < half[0] < three[0]
        assert two[1] < half[1] < three[1]

    def test_no_trials_is_uninformative(self) -> None:
        assert binomial_interval(successes=0, trials=0) == (0.0, 1.0)

    def test_rejects_unknown_method(self) -> None:
        with pytest.raises(ValueError) as info:
            binomial_interval(successes=1, trials=2, method="wald")
        assert str(info.value) == (
            "method must be one of ['clopper-pearson', 'wilson'], but got method='wald'"
        )

    def test_rejects_more_successes_than_trials(self) -> None:
        with pytest.raises(ValueError, match="need 0 <= successes <= trials"):
            binomial_interval(successes=11, trials=10)

    def test_rejects_bad_confidence(self) -> None:
        with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
            binomial_interval(successes=1, trials=10, confidence=1.0)


class TestPPV:
    def test_hand_value(self) -> None:
        # 0.01·0.3 / (0.01·0.3 + 0.99·0.01) = 0.003 / 0.0129 = 0.2325581395
        assert ppv(tpr=0.3, fpr=0.01, prior=0.01) == pytest.approx(0.003 / 0.0129, rel=1e-14)

    def test_no_claims_discloses_nothing(self) -> None:
        assert ppv(tpr=0.0, fpr=0.0, prior=0.01) == 0.0

    def test_random_guessing_gives_the_prior(self) -> None:
        assert ppv(tpr=0.2, fpr=0.2, prior=0.03) == pytest.approx(0.03, rel=1e-14)

    def test_interval_is_bonferroni_clopper_pearson(self) -> None:
        # each rate at 97.5 % two-sided: Beta quantiles at 0.0125 and 0.9875
        tpr_low = beta.ppf(0.0125, 30, 71)
        tpr_high = beta.ppf(0.9875, 31, 70)
        fpr_low = beta.ppf(0.0125, 10, 991)
        fpr_high = beta.ppf(0.9875, 11, 990)
        low = 0.01 * tpr_low / (0.01 * tpr_low + 0.99 * fpr_high)
        high = 0.01 * tpr_high / (0.01 * tpr_high + 0.99 * fpr_low)
        got = ppv_interval(tp=30, n_members=100, fp=10, n_nonmembers=1000, prior=0.01)
        assert got == pytest.approx((low, high), rel=1e-12)
        assert got[0] < 0.2325581 < got[1]  # the estimate lies inside: (0.0939, 0.4936)

    def test_realistic_advantage_hand_value(self) -> None:
        # (0.2325581 - 0.01) / 0.99 = 0.2248062
        assert realistic_advantage(ppv=0.003 / 0.0129, prior=0.01) == pytest.approx(
            (0.003 / 0.0129 - 0.01) / 0.99, rel=1e-14
        )
        assert realistic_advantage(ppv=0.01, prior=0.01) == 0.0


class TestBreakEvenPrior:
    def test_hand_value_and_ppv_there_equals_bound(self) -> None:
        # π* = 0.5·0.01 / (0.3·0.5 + 0.5·0.01) = 0.005 / 0.155 = 0.0322580645
        prior = break_even_prior(tpr=0.3, fpr=0.01, max_ppv=0.5)
        assert prior == pytest.approx(0.005 / 0.155, rel=1e-14)
        assert ppv(tpr=0.3, fpr=0.01, prior=prior) == pytest.approx(0.5, rel=1e-12)
        assert ppv(tpr=0.3, fpr=0.01, prior=prior * 1.01) > 0.5

    def test_no_true_positives_is_always_adequate(self) -> None:
        assert break_even_prior(tpr=0.0, fpr=0.1, max_ppv=0.5) == 1.0

    def test_no_false_positives_is_never_adequate(self) -> None:
        assert break_even_prior(tpr=0.1, fpr=0.0, max_ppv=0.5) == 0.0

    def test_bound_of_one_is_always_met(self) -> None:
        assert break_even_prior(tpr=0.1, fpr=0.0, max_ppv=1.0) == 1.0


class TestDPBound:
    def test_hand_value(self) -> None:
        # TPR ≤ e^1·0.01 + 1e-5 = 0.0271928183; PPV = 0.01·T / (0.01·T + 0.99·0.01) = 0.0267332
        tpr = math.e * 0.01 + 1e-5
        expected = 0.01 * tpr / (0.01 * tpr + 0.99 * 0.01)
        got = dp_ppv_bound(epsilon=1.0, delta=1e-5, fpr=0.01, prior=0.01)
        assert got == pytest.approx(expected, rel=1e-12)
        assert got == pytest.approx(0.0267332, abs=1e-7)

    def test_tpr_is_capped_at_one(self) -> None:
        # e^10·0.01 > 1, so TPR = 1: PPV = 0.01 / (0.01 + 0.99·0.01) = 1/1.99
        assert dp_ppv_bound(epsilon=10.0, delta=0.0, fpr=0.01, prior=0.01) == pytest.approx(
            1 / 1.99, rel=1e-12
        )


class TestPPVUpperBound:
    def test_is_ppv_at_the_one_sided_corners(self) -> None:
        # 95 % one-sided upper bound: TPR at its 97.5 % upper CP limit, FPR at its 2.5 % lower limit
        from objectives.stats import ppv_upper_bound

        tpr_high = beta.ppf(0.975, 31, 70)   # 30 of 100
        fpr_low = beta.ppf(0.025, 10, 991)   # 10 of 1000
        expected = 0.01 * tpr_high / (0.01 * tpr_high + 0.99 * fpr_low)
        got = ppv_upper_bound(tp=30, n_members=100, fp=10, n_nonmembers=1000, prior=0.01)
        assert got == pytest.approx(expected, rel=1e-10)
        # it lies inside the two-sided (Bonferroni, each rate at 97.5 %) interval's upper end
        assert got <= ppv_interval(tp=30, n_members=100, fp=10, n_nonmembers=1000, prior=0.01)[1]


class TestDPTPRBound:
    def test_hand_value_and_cap(self) -> None:
        from objectives.stats import dp_tpr_bound

        assert dp_tpr_bound(epsilon=1.0, delta=1e-5, fpr=0.01) == pytest.approx(0.0271928183, rel=1e-9)
        assert dp_tpr_bound(epsilon=10.0, delta=0.0, fpr=0.01) == 1.0

    def test_rejects_negative_epsilon(self) -> None:
        from objectives.stats import dp_tpr_bound

        with pytest.raises(ValueError, match="need epsilon >= 0"):
            dp_tpr_bound(epsilon=-1.0, delta=0.0, fpr=0.1)


class TestResolutionWarning:
    def test_message_when_the_lowest_fpr_is_too_small(self) -> None:
        from objectives.stats import resolution_warning

        text = resolution_warning(
            n_nonmembers=359, calibration_fprs=[0.01, 0.001, 0.1], min_expected_false_positives=10
        )
        assert text == (
            "the 359 evaluation non-members cannot resolve the lowest calibration FPR 0.001: 0.359 "
            "false positives expected there (fewer than 10; not even one), so risk at that FPR is not "
            "measured; 10000 non-members would resolve it (raise data.roles.nonmembers or use a "
            "larger data set)"
        )

    def test_pooled_runs_are_named_as_such(self) -> None:
        """3 retrains × 359 non-members = 1077 scores: 1.077 expected at 0.001, 10000 needed = 3334 per run."""
        from objectives.stats import resolution_warning

        text = resolution_warning(
            n_nonmembers=1077, calibration_fprs=[0.001, 0.01], min_expected_false_positives=10, pooled_runs=3
        )
        assert text == (
            "the 1077 evaluation non-member scores pooled over 3 runs (359 non-members each) cannot resolve "
            "the lowest calibration FPR 0.001: 1.08 false positives expected there (fewer than 10), so risk "
            "at that FPR is not measured; 10000 pooled scores (3334 non-members per run) would resolve it "
            "(raise data.roles.nonmembers or use a larger data set)"
        )

    def test_none_when_resolvable(self) -> None:
        from objectives.stats import resolution_warning

        assert resolution_warning(
            n_nonmembers=10000, calibration_fprs=[0.001], min_expected_false_positives=10
        ) is None
