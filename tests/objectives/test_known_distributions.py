"""Acceptance: on scores with known distributions the estimates recover the analytic
values within their intervals, and the intervals cover the truth at their nominal rate.

Members score N(μ, 1) and non-members N(0, 1). At a threshold t the true rates are
TPR(t) = 1 − Φ(t − μ) and FPR(t) = 1 − Φ(t); the AUC is Φ(μ/√2); the PPV at prior π
is π·TPR/(π·TPR + (1 − π)·FPR). The attacker calibrates t on its own non-members, so
the truth that the evaluation's binomial intervals must cover is the rate *at the
calibrated threshold* t̂ (conditionally on t̂ the evaluation counts are binomial).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from objectives import (
    AttackScores,
    binomial_interval,
    calibrate_threshold,
    ppv,
    realistic_risk,
    worst_case_risk,
)
from objectives.stats import auc_interval

MU = 1.0
PRIOR = 0.05


def _draw(rng: np.random.Generator, n: int, n_calibration: int) -> AttackScores:
    return AttackScores(
        members=rng.normal(MU, 1.0, n),
        nonmembers=rng.normal(0.0, 1.0, n),
        calibration=rng.normal(0.0, 1.0, n_calibration),
    )


def _truth_at(threshold: float) -> tuple[float, float]:
    return float(norm.sf(threshold - MU)), float(norm.sf(threshold))


class TestOneLargeDraw:
    """Every figure the realistic and worst-case views report, against its analytic value.

    A dozen intervals are checked on one draw; at 95 % each, one of them would miss
    about half the time by design. These checks use the same computations at 99.9 %
    (so the test does not depend on a lucky seed); the 95 % level itself is checked by
    its coverage below.
    """

    LEVEL = 0.999

    @pytest.fixture(scope="class")
    def scores(self) -> AttackScores:
        return _draw(np.random.default_rng(7), 4000, 20000)

    @pytest.mark.parametrize("alpha", [0.01, 0.1])
    def test_realistic_rates_and_ppv(self, scores: AttackScores, alpha: float) -> None:
        risk = realistic_risk(
            [{"loss": scores}], prior=PRIOR, calibration_fprs=[alpha], max_ppv=0.5, confidence=self.LEVEL
        )
        point = risk.points[0]
        t_hat = calibrate_threshold(scores.calibration, alpha=alpha).value
        tpr, fpr = _truth_at(t_hat)
        assert point.tpr_interval[0] <= tpr <= point.tpr_interval[1]
        assert point.fpr_interval[0] <= fpr <= point.fpr_interval[1]
        assert point.ppv_interval[0] <= ppv(tpr=tpr, fpr=fpr, prior=PRIOR) <= point.ppv_interval[1]
        assert ppv(tpr=tpr, fpr=fpr, prior=PRIOR) <= point.ppv_upper
        # the calibrated threshold itself sits where theory puts it, t = z_{1−α}, up to the
        # quantile's sampling error sqrt(α(1−α)/m)/φ(z) on m = 20,000 records (4 standard errors)
        z = norm.isf(alpha)
        assert abs(t_hat - z) <= 4 * math.sqrt(alpha * (1 - alpha) / 20000) / norm.pdf(z)

    def test_worst_case_auc_and_tpr(self, scores: AttackScores) -> None:
        worst = worst_case_risk([{"loss": scores}], fprs=[0.1], calibration_fprs=[0.1], max_ppv=0.5)
        attack = worst.attacks[0]
        auc = norm.cdf(MU / math.sqrt(2.0))  # 0.760250
        low, high = auc_interval(auc=attack.auc, n_members=4000, n_nonmembers=4000, confidence=self.LEVEL)
        assert low <= auc <= high
        # oracle TPR at FPR 0.1: the empirical ROC at α, within a binomial interval of 4000 members
        # (widened by 0.01 for the oracle threshold's own noise at α = 0.1 on 4000 non-members)
        low, high = binomial_interval(
            successes=attack.tpr_at_fpr[0.1] * 4000, trials=4000, confidence=self.LEVEL
        )
        assert low - 0.01 <= norm.sf(norm.isf(0.1) - MU) <= high + 0.01
        # the balanced advantage max_t TPR − FPR is reached at t = μ/2: 2Φ(μ/2) − 1
        assert attack.advantage == pytest.approx(2 * norm.cdf(MU / 2) - 1, abs=0.03)


class TestCoverageOverRepeatedDraws:
    """400 independent draws of 200 members / 200 non-members: count how often each
    interval holds the truth. With 400 draws the coverage estimate has a standard error
    of about 0.011 at 0.95, so the tolerances below are ~2.5 standard errors."""

    REPEATS = 400
    ALPHA = 0.1

    @pytest.fixture(scope="class")
    def outcomes(self) -> dict[str, float]:
        rng = np.random.default_rng(20240601)
        hits = {k: 0 for k in ("tpr_cp", "fpr_cp", "tpr_wilson", "fpr_wilson", "ppv", "ppv_upper", "auc")}
        auc_true = norm.cdf(MU / math.sqrt(2.0))
        for _ in range(self.REPEATS):
            scores = _draw(rng, 200, 2000)
            risk = realistic_risk(
                [{"loss": scores}], prior=PRIOR, calibration_fprs=[self.ALPHA], max_ppv=0.5
            )
            point = risk.points[0]
            tpr, fpr = _truth_at(calibrate_threshold(scores.calibration, alpha=self.ALPHA).value)
            hits["tpr_cp"] += point.tpr_interval[0] <= tpr <= point.tpr_interval[1]
            hits["fpr_cp"] += point.fpr_interval[0] <= fpr <= point.fpr_interval[1]
            w_tpr = binomial_interval(successes=point.tp, trials=200, method="wilson")
            w_fpr = binomial_interval(successes=point.fp, trials=200, method="wilson")
            hits["tpr_wilson"] += w_tpr[0] <= tpr <= w_tpr[1]
            hits["fpr_wilson"] += w_fpr[0] <= fpr <= w_fpr[1]
            true_ppv = ppv(tpr=tpr, fpr=fpr, prior=PRIOR)
            hits["ppv"] += point.ppv_interval[0] <= true_ppv <= point.ppv_interval[1]
            hits["ppv_upper"] += true_ppv <= point.ppv_upper
            worst = worst_case_risk([{"loss": scores}], fprs=[0.1], calibration_fprs=[0.1], max_ppv=0.5)
            low, high = worst.attacks[0].auc_interval
            hits["auc"] += low <= auc_true <= high
        return {k: v / self.REPEATS for k, v in hits.items()}

    @pytest.mark.parametrize("key", ["tpr_cp", "fpr_cp"])
    def test_clopper_pearson_is_at_least_nominal(self, outcomes: dict[str, float], key: str) -> None:
        assert outcomes[key] >= 0.95 - 0.027

    @pytest.mark.parametrize("key", ["tpr_wilson", "fpr_wilson"])
    def test_wilson_is_about_nominal(self, outcomes: dict[str, float], key: str) -> None:
        assert abs(outcomes[key] - 0.95) <= 0.03

    def test_ppv_interval_and_upper_bound_are_at_least_nominal(self, outcomes: dict[str, float]) -> None:
        assert outcomes["ppv"] >= 0.95 - 0.027
        assert outcomes["ppv_upper"] >= 0.95 - 0.027

    def test_auc_interval_is_about_nominal(self, outcomes: dict[str, float]) -> None:
        assert abs(outcomes["auc"] - 0.95) <= 0.03


def test_auc_interval_hand_value() -> None:
    # A = 0.75, n₁ = n₀ = 100: Q₁ = 0.6, Q₂ = 0.642857;
    # SE² = (0.1875 + 99·0.0375 + 99·0.080357)/10⁴ = 0.00118554, SE = 0.034432
    # ± 1.959964·SE = ± 0.067486
    low, high = auc_interval(auc=0.75, n_members=100, n_nonmembers=100)
    assert low == pytest.approx(0.75 - 0.067486, abs=2e-6)
    assert high == pytest.approx(0.75 + 0.067486, abs=2e-6)
