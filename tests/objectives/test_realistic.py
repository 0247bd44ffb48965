from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from objectives import (
    AttackScores,
    Observations,
    calibrate_threshold,
    expected_claims,
    make_attack,
    ppv,
    realistic_risk,
)


def _risk(runs, **kwargs):
    options = dict(prior=0.01, calibration_fprs=(0.1,), max_ppv=0.5)
    options.update(kwargs)
    return realistic_risk(runs, **options)


class TestThresholdsComeFromCalibrationOnly:
    def test_shifted_evaluation_non_members_show_the_calibration_gap(self) -> None:
        # calibration 0..99, α = 0.1: P(>89) = 10/100, so the attacker claims s > 89.
        # evaluation non-members 5..104: 90..104 are claimed -> fp = 15, FPR 0.15 (not 0.1);
        # members 0, 2, ..., 98: 90, 92, 94, 96, 98 are claimed -> tp = 5, TPR 0.1.
        # An oracle choosing on the evaluation non-members would claim s > 94: fp 10, tp 2.
        scores = AttackScores(
            members=np.arange(0.0, 100.0, 2.0),
            nonmembers=np.arange(5.0, 105.0),
            calibration=np.arange(100.0),
        )
        point = _risk([{"loss": scores}]).points[0]
        assert (point.tp, point.n_members, point.fp, point.n_nonmembers) == (5.0, 50, 15.0, 100)
        assert (point.tpr, point.fpr) == (0.1, 0.15)
        assert point.target_fpr == 0.1

    def test_relabelling_evaluation_records_does_not_move_the_threshold(
        self, rng: np.random.Generator
    ) -> None:
        calibration = rng.normal(size=400)
        evaluation = rng.normal(loc=0.5, size=600)
        threshold = calibrate_threshold(calibration, alpha=0.1)
        total = expected_claims(evaluation, threshold)
        for _ in range(3):
            order = rng.permutation(600)
            members, nonmembers = evaluation[order[:200]], evaluation[order[200:]]
            scores = AttackScores(members=members, nonmembers=nonmembers, calibration=calibration)
            point = _risk([{"a": scores}]).points[0]
            assert point.tp == expected_claims(members, threshold)
            assert point.fp == expected_claims(nonmembers, threshold)
            assert point.tp + point.fp == pytest.approx(total, rel=1e-12)


class TestTies:
    def test_identical_outputs_give_the_prior(self) -> None:
        # every record scores 0: each record is claimed with probability α on both sets
        scores = AttackScores(
            members=np.zeros(500), nonmembers=np.zeros(1000), calibration=np.zeros(300)
        )
        risk = _risk([{"loss": scores}], calibration_fprs=(0.01, 0.1), prior=0.03)
        for point, alpha in zip(risk.points, (0.01, 0.1), strict=True):
            assert point.tpr == pytest.approx(alpha, rel=1e-12)
            assert point.fpr == pytest.approx(alpha, rel=1e-12)
            assert point.ppv == pytest.approx(0.03, rel=1e-12)
            assert point.advantage == pytest.approx(0.0, abs=1e-12)
        assert risk.risk == pytest.approx(0.03, rel=1e-12)
        assert risk.adequate


class TestSeparatedGaussians:
    def test_tpr_at_calibrated_alpha_matches_theory(self, rng: np.random.Generator) -> None:
        # members N(1, 1), non-members and calibration N(0, 1); threshold ≈ z_0.9 = 1.281552
        # TPR = 1 - Φ(z_0.9 - 1) = 1 - Φ(0.281552) = 0.389144
        # (a large calibration set keeps the threshold's own noise small next to the interval,
        # which is conditional on the attacker's threshold)
        n = 20000
        scores = AttackScores(
            members=rng.normal(1.0, 1.0, n),
            nonmembers=rng.normal(0.0, 1.0, n),
            calibration=rng.normal(0.0, 1.0, 10 * n),
        )
        point = _risk([{"gauss": scores}]).points[0]
        expected_tpr = 1 - norm.cdf(norm.ppf(0.9) - 1)
        assert expected_tpr == pytest.approx(0.389144, abs=1e-6)
        assert point.tpr_interval[0] <= expected_tpr <= point.tpr_interval[1]
        assert point.fpr_interval[0] <= 0.1 <= point.fpr_interval[1]
        assert point.ppv == pytest.approx(ppv(tpr=point.tpr, fpr=point.fpr, prior=0.01), rel=1e-14)


class TestResolvability:
    def _scores(self, rng: np.random.Generator, n_nonmembers: int) -> AttackScores:
        return AttackScores(
            members=rng.normal(0.5, 1.0, 200),
            nonmembers=rng.normal(0.0, 1.0, n_nonmembers),
            calibration=rng.normal(0.0, 1.0, 2000),
        )

    def test_small_alpha_is_reported_with_the_records_it_needs(
        self, rng: np.random.Generator
    ) -> None:
        # 500 non-members: 500·0.001 = 0.5 and 500·0.01 = 5 < 10; 500·0.02 = 10 ≥ 10
        risk = _risk([{"a": self._scores(rng, 500)}], calibration_fprs=(0.001, 0.01, 0.02))
        assert [p.resolvable for p in risk.points] == [False, False, True]
        assert risk.unresolvable_fprs == (0.001, 0.01)
        assert risk.nonmembers_needed == {0.001: 10000, 0.01: 1000}  # ceil(10/α)
        assert risk.worst is risk.points[2]
        assert risk.risk == risk.points[2].ppv

    def test_unresolvable_points_never_set_the_risk(self) -> None:
        # calibration 0..999: α = 0.01 claims s > 989, α = 0.1 claims s > 899.
        # every member scores 5000; non-members are 0..89 and 950..959.
        # α = 0.01 (100·0.01 = 1 expected false positive: unresolvable): fp 0, PPV 1 — luck;
        # α = 0.1 (resolvable): fp 10, PPV = 0.01/(0.01 + 0.99·0.1) = 0.0917
        nonmembers = np.concatenate([np.arange(90.0), np.arange(950.0, 960.0)])
        scores = AttackScores(
            members=np.full(100, 5000.0), nonmembers=nonmembers, calibration=np.arange(1000.0)
        )
        risk = _risk([{"a": scores}], calibration_fprs=(0.01, 0.1))
        assert not risk.points[0].resolvable and risk.points[0].ppv == 1.0
        assert risk.worst is risk.points[1]
        assert risk.risk == pytest.approx(0.01 / (0.01 + 0.99 * 0.1), rel=1e-12)

    def test_nothing_resolvable_raises(self, rng: np.random.Generator) -> None:
        with pytest.raises(ValueError) as info:
            _risk([{"a": self._scores(rng, 500)}], calibration_fprs=(0.001, 0.01))
        assert str(info.value) == (
            "no calibration FPR is resolvable with 500 evaluation non-members "
            "(n_nonmembers * alpha must reach 10.0 expected false positives): "
            "alpha=0.001 needs 10000, alpha=0.01 needs 1000; "
            "add non-members or larger calibration_fprs"
        )


class TestPooling:
    def test_counts_add_over_runs(self) -> None:
        # α = 0.1, each run calibrated on its own records:
        # run 1: calibration 0..99 -> claims s > 89: members {95, 96, 97} = 3; non-members
        #        0..599 -> 90..599 = 510
        # run 2: calibration 0..9 -> claims s > 8: members {9} = 1; non-members 9..599 = 591
        # pooled: tp = 4 of 6, fp = 1101 of 1200
        run1 = AttackScores(
            members=np.array([95.0, 96.0, 97.0, 1.0]),
            nonmembers=np.arange(600.0),
            calibration=np.arange(100.0),
        )
        run2 = AttackScores(
            members=np.array([9.0, 0.0]), nonmembers=np.arange(600.0), calibration=np.arange(10.0)
        )
        alone = [_risk([{"a": run}], prior=0.5).points[0] for run in (run1, run2)]
        assert [(p.tp, p.fp) for p in alone] == [(3.0, 510.0), (1.0, 591.0)]
        point = _risk([{"a": run1}, {"a": run2}], prior=0.5).points[0]
        assert (point.tp, point.n_members, point.fp, point.n_nonmembers) == (4.0, 6, 1101.0, 1200)
        assert point.tpr == 4 / 6 and point.fpr == 1101 / 1200

    def test_pooling_makes_alpha_resolvable(self, rng: np.random.Generator) -> None:
        # 600 non-members per run: 6 expected false positives at α = 0.01 alone, 12 pooled
        def run() -> dict[str, AttackScores]:
            return {
                "a": AttackScores(
                    members=rng.normal(size=100),
                    nonmembers=rng.normal(size=600),
                    calibration=rng.normal(size=1000),
                )
            }

        with pytest.raises(ValueError, match="alpha=0.01 needs 1000"):
            _risk([run()], calibration_fprs=(0.01,))
        assert _risk([run(), run()], calibration_fprs=(0.01,)).points[0].resolvable

    def test_runs_must_score_the_same_attacks(self) -> None:
        scores = AttackScores(
            members=np.zeros(3), nonmembers=np.zeros(100), calibration=np.zeros(3)
        )
        with pytest.raises(ValueError, match=r"runs\[0\] has \['a'\] and runs\[1\] has \['b'\]"):
            _risk([{"a": scores}, {"b": scores}])


class TestDecision:
    @staticmethod
    def _scores(members_claimed: int, n: int) -> AttackScores:
        # calibration 0..n-1 with α = 0.1 claims s > 0.9n - 1 exactly; members_claimed members
        # score above every calibration record; non-members are the calibration scores again
        members = np.concatenate(
            [np.full(members_claimed, 10.0 * n), np.zeros(n - members_claimed)]
        )
        return AttackScores(
            members=members, nonmembers=np.arange(float(n)), calibration=np.arange(float(n))
        )

    def test_uncertain_when_the_interval_straddles_the_bound(self) -> None:
        # TPR 0.2, FPR 0.1 on 100 + 100 records, π = 0.5: PPV = 0.2/0.3 = 0.6667,
        # Bonferroni interval (0.386, 0.874) contains 0.6
        risk = _risk([{"a": self._scores(20, 100)}], prior=0.5, max_ppv=0.6)
        assert risk.risk == pytest.approx(2 / 3, rel=1e-12)
        assert risk.interval[0] < 0.6 < risk.interval[1]
        assert not risk.adequate and risk.uncertain

    def test_certain_with_many_records(self) -> None:
        # TPR 0.6, FPR 0.1 on 10000 + 10000: PPV = 0.6/0.7 = 0.857, interval (0.846, 0.867)
        risk = _risk([{"a": self._scores(6000, 10000)}], prior=0.5, max_ppv=0.6)
        assert risk.risk == pytest.approx(6 / 7, rel=1e-12)
        assert not risk.adequate and not risk.uncertain

    def test_adequate_at_the_realistic_prior(self) -> None:
        # the same attack at π = 0.01: PPV = 0.006/(0.006 + 0.099) = 0.0571 ≤ 0.5
        risk = _risk([{"a": self._scores(6000, 10000)}], prior=0.01, max_ppv=0.5)
        assert risk.risk == pytest.approx(0.006 / 0.105, rel=1e-12)
        assert risk.adequate and not risk.uncertain
        assert risk.advantage == pytest.approx((0.006 / 0.105 - 0.01) / 0.99, rel=1e-12)
        # break-even: π* = 0.5·0.1/(0.6·0.5 + 0.5·0.1) = 0.05/0.35 = 0.142857; PPV there = 0.5
        assert risk.break_even_prior == pytest.approx(0.05 / 0.35, rel=1e-12)
        assert risk.ppv_at(risk.break_even_prior) == pytest.approx(0.5, rel=1e-12)
        assert risk.ppv_at(0.5) == pytest.approx(6 / 7, rel=1e-12)
        assert risk.ppv_at(0.01) == risk.risk

    def test_worst_attack_is_chosen(self) -> None:
        runs = [{"weak": self._scores(2000, 10000), "strong": self._scores(6000, 10000)}]
        risk = _risk(runs, prior=0.01)
        assert risk.worst is not None and risk.worst.attack == "strong"
        assert [p.attack for p in risk.points] == ["weak", "strong"]

    def test_to_dict_is_json_ready(self) -> None:
        risk = _risk([{"a": self._scores(20, 100)}], calibration_fprs=(0.01, 0.1), prior=0.5)
        data = json.loads(json.dumps(risk.to_dict()))
        assert data["nonmembers_needed"] == {"0.01": 1000}
        assert data["unresolvable_fprs"] == [0.01]
        assert data["worst"]["target_fpr"] == 0.1
        assert data["interval"] == list(risk.interval)
        assert len(data["points"]) == 2
        assert data["adequate"] is False


def test_end_to_end_with_a_real_attack(rng: np.random.Generator) -> None:
    # a target that is more confident on its members than on anyone else
    def obs(margin: float, n: int) -> Observations:
        logits = np.stack([rng.normal(margin, 1.0, n), np.zeros(n)], axis=1)
        return Observations(
            labels=np.zeros(n, dtype=int),
            target_logits=logits,
            reference_logits=np.zeros((0, n, 2)),
        )

    attack = make_attack("loss")
    scores = AttackScores(
        members=attack.score(obs(2.0, 20000)),
        nonmembers=attack.score(obs(1.0, 20000)),
        calibration=attack.score(obs(1.0, 200000)),
    )
    risk = _risk([{"loss": scores}], prior=0.5, calibration_fprs=(0.01, 0.1))
    # the loss score is φ = logit_0 - logit_1 ~ N(margin, 1): threshold ≈ 1 + z_0.9,
    # TPR = 1 - Φ(z_0.9 - 1) = 0.389 at α = 0.1, PPV at π = ½ = 0.389/0.489 = 0.796
    point = risk.points[1]
    assert point.tpr_interval[0] <= 1 - norm.cdf(norm.ppf(0.9) - 1) <= point.tpr_interval[1]
    assert risk.risk > 0.5


def test_rejects_bad_prior() -> None:
    scores = AttackScores(members=np.zeros(3), nonmembers=np.zeros(100), calibration=np.zeros(3))
    with pytest.raises(ValueError) as info:
        _risk([{"a": scores}], prior=0.0)
    assert str(info.value) == "prior must be in (0, 1), but got prior=0.0"


def test_attack_scores_reject_empty_sets() -> None:
    with pytest.raises(ValueError, match="AttackScores.calibration must be a non-empty 1-d array"):
        AttackScores(members=np.zeros(3), nonmembers=np.zeros(3), calibration=np.zeros(0))
