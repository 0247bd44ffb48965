from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from objectives import AttackScores, realistic_risk, roc_points, worst_case_risk
from objectives.stats import ppv
from objectives.worst_case import roc_auc, tpr_at


def _worst(runs, **kwargs):
    options = dict(fprs=(0.001, 0.01), calibration_fprs=(0.01, 0.1), max_ppv=0.5)
    options.update(kwargs)
    return worst_case_risk(runs, **options)


class TestRocPoints:
    # members (3, 2), non-members (1, 2): thresholds ≥3: (0, ½); ≥2 (the tie): (½, 1); ≥1: (1, 1)
    MEMBERS, NONMEMBERS = np.array([3.0, 2.0]), np.array([1.0, 2.0])

    def test_vertices_group_ties(self) -> None:
        fpr, tpr = roc_points(self.MEMBERS, self.NONMEMBERS)
        np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 1.0])
        np.testing.assert_array_equal(tpr, [0.0, 0.5, 1.0, 1.0])

    def test_auc_counts_ties_half(self) -> None:
        # pairs (3>1) (3>2) (2>1) (2=2: ½) -> 3.5/4
        assert roc_auc(self.MEMBERS, self.NONMEMBERS) == 0.875

    def test_tpr_at_interpolates_and_takes_the_top_of_a_rise(self) -> None:
        fpr, tpr = roc_points(self.MEMBERS, self.NONMEMBERS)
        assert tpr_at(fpr=fpr, tpr=tpr, alpha=0.0) == 0.5  # the vertical rise at FPR 0
        assert tpr_at(fpr=fpr, tpr=tpr, alpha=0.25) == 0.75  # halfway from (0, ½) to (½, 1)
        assert tpr_at(fpr=fpr, tpr=tpr, alpha=0.5) == 1.0
        assert tpr_at(fpr=fpr, tpr=tpr, alpha=1.0) == 1.0


class TestWorstCaseRisk:
    def test_hand_worked(self) -> None:
        # members 50..149, non-members 0..99: claiming s ≥ 100 - 100α claims 100α non-members
        # and 50 + 100α members, so the ROC is TPR = ½ + α for α ≤ ½
        members, nonmembers = np.arange(50.0, 150.0), np.arange(100.0)
        scores = AttackScores(members=members, nonmembers=nonmembers, calibration=nonmembers)
        risk = _worst([{"a": scores}], fprs=(0.01,), calibration_fprs=(0.1,))
        attack = risk.attacks[0]
        assert attack.tpr_at_fpr == {0.01: pytest.approx(0.51, abs=1e-12)}
        # AUC: 1 - P(non-member > member) - ½P(tie) = 1 - (Σ_{k=1..49} k + ½·50)/10^4 = 0.875
        assert attack.auc == pytest.approx(1 - (49 * 50 / 2 + 25) / 10_000, rel=1e-12)
        assert attack.advantage == pytest.approx(0.5, abs=1e-12)  # at FPR ½: TPR 1
        # ppv at ½ for α = 0.1: 0.6 / (0.6 + 0.1) = 0.857143
        assert attack.ppv_at_half == pytest.approx(0.6 / 0.7, rel=1e-12)
        assert risk.risk == attack.ppv_at_half and not risk.adequate

    def test_constant_scores_are_a_coin_flip(self) -> None:
        scores = AttackScores(
            members=np.zeros(200), nonmembers=np.zeros(1000), calibration=np.zeros(5)
        )
        risk = _worst([{"a": scores}])
        assert risk.auc == 0.5
        assert risk.advantage == 0.0
        assert risk.tpr_at_fpr == {0.001: pytest.approx(0.001), 0.01: pytest.approx(0.01)}
        assert risk.risk == pytest.approx(0.5, rel=1e-12)  # TPR α / (α + α)
        assert risk.adequate

    def test_separated_gaussians(self, rng: np.random.Generator) -> None:
        # members N(1, 1), non-members N(0, 1): AUC = Φ(1/√2) = 0.760250; TPR at 10 % FPR 0.389144
        n = 20000
        scores = AttackScores(
            members=rng.normal(1.0, 1.0, n),
            nonmembers=rng.normal(0.0, 1.0, n),
            calibration=np.zeros(1),
        )
        risk = _worst([{"a": scores}], fprs=(0.1,))
        assert risk.auc == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.01)
        assert risk.tpr_at_fpr[0.1] == pytest.approx(1 - norm.cdf(norm.ppf(0.9) - 1), abs=0.015)
        # max TPR - FPR at threshold ½: 2Φ(½) - 1 = 0.382925
        assert risk.advantage == pytest.approx(2 * norm.cdf(0.5) - 1, abs=0.015)

    def test_runs_are_pooled_by_concatenation(self) -> None:
        run1 = AttackScores(
            members=np.array([3.0]), nonmembers=np.array([1.0] * 10), calibration=np.zeros(1)
        )
        run2 = AttackScores(
            members=np.array([2.0]), nonmembers=np.array([2.0] * 10), calibration=np.zeros(1)
        )
        # pooled: members (3, 2), non-members ten 1s and ten 2s: pairs 20 + 10 + 5 = 35 of 40
        risk = _worst([{"a": run1}, {"a": run2}], calibration_fprs=(0.5,))
        assert risk.auc == 35 / 40

    def test_worst_over_attacks(self) -> None:
        base = np.arange(100.0)
        weak = AttackScores(members=base + 10, nonmembers=base, calibration=base)
        strong = AttackScores(members=base + 50, nonmembers=base, calibration=base)
        risk = _worst([{"weak": weak, "strong": strong}], calibration_fprs=(0.1,))
        assert risk.auc == max(a.auc for a in risk.attacks) == risk.attacks[1].auc
        assert risk.risk == risk.attacks[1].ppv_at_half

    def test_only_resolvable_alphas_count(self) -> None:
        # 100 non-members: α = 0.01 is unresolvable (1 expected false positive), α = 0.1 counts
        members, nonmembers = np.arange(50.0, 150.0), np.arange(100.0)
        scores = AttackScores(members=members, nonmembers=nonmembers, calibration=nonmembers)
        risk = _worst([{"a": scores}], calibration_fprs=(0.01, 0.1))
        assert risk.risk == pytest.approx(0.6 / 0.7, rel=1e-12)  # not 0.51/0.52 at α = 0.01

    def test_nothing_resolvable_raises(self) -> None:
        scores = AttackScores(members=np.zeros(5), nonmembers=np.zeros(50), calibration=np.zeros(5))
        with pytest.raises(ValueError, match="alpha=0.01 needs 1000, alpha=0.1 needs 100"):
            _worst([{"a": scores}])

    def test_to_dict_is_json_ready(self) -> None:
        scores = AttackScores(
            members=np.ones(200), nonmembers=np.zeros(1000), calibration=np.zeros(5)
        )
        data = json.loads(json.dumps(_worst([{"a": scores}]).to_dict()))
        assert data["tpr_at_fpr"] == {"0.001": 1.0, "0.01": 1.0}
        assert data["attacks"][0]["attack"] == "a"
        assert data["adequate"] is False


def test_worst_case_ppv_at_half_bounds_every_realistic_point_at_resolvable_fprs():
    # The oracle may pick any threshold, so at prior ½ its best precision over FPR ≥ the
    # smallest resolvable α must be at least the realistic attacker's at the same prior.
    rng = np.random.default_rng(7)
    for _ in range(20):
        scores = {
            "loss": AttackScores(
                members=rng.normal(0.3, 1, 400), nonmembers=rng.normal(0, 1, 400), calibration=rng.normal(0, 1, 300)
            )
        }
        fprs = (0.05, 0.1)
        real = realistic_risk([scores], prior=0.01, calibration_fprs=fprs, max_ppv=0.5)
        worst = worst_case_risk([scores], calibration_fprs=fprs, max_ppv=0.5)
        for point in real.points:
            if point.resolvable and point.fpr >= min(fprs):
                assert worst.risk >= ppv(tpr=point.tpr, fpr=point.fpr, prior=0.5) - 1e-12
