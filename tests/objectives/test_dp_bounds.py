from __future__ import annotations

import json
import math

import numpy as np
import pytest

from objectives import AttackScores, realistic_risk
from objectives.dp_bounds import dp_bounds


def test_hand_worked_bounds_at_the_realized_fpr() -> None:
    # 100 members, 1000 non-members; α = 0.1 calibrated on scores 0..9 (threshold 8.x: claim score 9)
    # members: 30 score 9 -> TPR 0.3; non-members: 20 score 9 -> FPR 0.02 (realized, not the α)
    members = np.array([9.0] * 30 + [0.0] * 70)
    nonmembers = np.array([9.0] * 20 + [0.0] * 980)
    calibration = np.arange(10.0)
    risk = realistic_risk(
        [{"loss": AttackScores(members=members, nonmembers=nonmembers, calibration=calibration)}],
        prior=0.01, calibration_fprs=[0.1], max_ppv=0.5,
    )
    bounds = dp_bounds(points=risk.points, oracle_tpr={0.01: 0.2}, epsilon=2.0, delta=1e-5, prior=0.01)
    (point,) = bounds.realistic
    # TPR ≤ e²·0.02 + 1e-5 = 0.147791; PPV bound at π = 0.01: 0.01·0.147791/(0.01·0.147791 + 0.99·0.02)
    assert point.fpr == pytest.approx(0.02)
    assert point.tpr_bound == pytest.approx(math.exp(2) * 0.02 + 1e-5, rel=1e-12)
    assert point.ppv_bound == pytest.approx(0.00147791 / (0.00147791 + 0.0198), rel=1e-5)
    assert point.ppv == pytest.approx(0.003 / (0.003 + 0.0198))
    assert not point.within  # measured 0.3 > 0.148: this "DP" claim does not describe these scores
    (oracle,) = bounds.oracle
    # oracle at FPR 0.01, prior ½: TPR ≤ e²·0.01 + 1e-5 = 0.073901, PPV ≤ 0.073901/0.083901
    assert oracle.tpr_bound == pytest.approx(0.0739006, rel=1e-5)
    assert oracle.ppv_bound == pytest.approx(0.0739006 / 0.0839006, rel=1e-5)
    assert oracle.ppv == pytest.approx(0.2 / 0.21)
    json.dumps(bounds.to_dict())


def test_unresolvable_points_are_left_out() -> None:
    scores = AttackScores(members=np.zeros(10), nonmembers=np.zeros(50), calibration=np.zeros(10))
    risk = realistic_risk([{"loss": scores}], prior=0.01, calibration_fprs=[0.001, 0.5], max_ppv=0.5)
    bounds = dp_bounds(points=risk.points, oracle_tpr={}, epsilon=1.0, delta=0.0, prior=0.01)
    assert [b.target_fpr for b in bounds.realistic] == [0.5]


def test_infinite_epsilon_bounds_nothing() -> None:
    bounds = dp_bounds(points=[], oracle_tpr={0.001: 0.5}, epsilon=math.inf, delta=0.0, prior=0.01)
    assert bounds.oracle[0].tpr_bound == 1.0
