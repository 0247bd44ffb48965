"""Choosing the weakest adequate defense (DESIGN: "Weakest" and near-ties)."""

from __future__ import annotations

from defenses import DefenseConfig, DPSettings
from tuner.selection import intervention_key, least_risky, pareto_front, rank_candidates
from tuner.records import TrialRecord


def record(number, defense=DefenseConfig(), *, val=0.9, half_width=0.02, risk=0.1, adequate=True,
           wc_adequate=False, epsilon=None, test=None):
    return TrialRecord(
        number=number, is_baseline=number == 0, defense=defense, utility_validation=val,
        utility_validation_interval=(val - half_width, val + half_width), utility_test=val if test is None else test,
        utility_test_interval=(val - 0.03, val + 0.03), risk=risk, risk_interval=(risk / 2, risk * 2),
        advantage=0.0, break_even_prior=0.5, adequate=adequate, uncertain=False, worst_case_risk=0.9,
        worst_case_adequate=wc_adequate, worst_case_auc=0.6, worst_case_tpr={0.01: 0.02}, epochs_run=10,
        epsilon=epsilon, delta=None, noise_multiplier=None, realistic={}, worst_case={},
    )


DP = DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0))


def test_baseline_wins_a_near_tie():
    # The tie group is every adequate trial with val ≥ best − half-width(best) = 0.91 − 0.02 = 0.89;
    # the baseline (0.90) is in it, so the lesser intervention, the baseline, is chosen.
    base = record(0, val=0.90)
    wd = record(1, DefenseConfig(weight_decay=1e-3), val=0.91)
    assert [r.number for r in rank_candidates([base, wd])] == [0, 1]


def test_clear_utility_gain_beats_the_baseline():
    # 0.95 − 0.02 = 0.93 > 0.90: the baseline falls outside the tie group.
    base = record(0, val=0.90)
    wd = record(1, DefenseConfig(weight_decay=1e-3), val=0.95)
    assert [r.number for r in rank_candidates([base, wd])] == [1, 0]


def test_inadequate_trials_are_never_candidates():
    base = record(0, val=0.99, adequate=False)
    dp = record(1, DP, val=0.80, epsilon=3.0)
    assert [r.number for r in rank_candidates([base, dp])] == [1]
    assert rank_candidates([base]) == []


def test_tie_order_no_dp_then_larger_epsilon_then_less_regularization():
    strong_dp = record(1, DP, val=0.90, epsilon=1.0)
    weak_dp = record(2, DP, val=0.90, epsilon=8.0)
    wd = record(3, DefenseConfig(weight_decay=1e-2), val=0.90)
    less_wd = record(4, DefenseConfig(weight_decay=1e-4), val=0.90)
    ranked = rank_candidates([strong_dp, weak_dp, wd, less_wd])
    assert [r.number for r in ranked] == [4, 3, 2, 1]


def test_later_stopping_is_the_lesser_intervention():
    none = DefenseConfig()
    late, early = DefenseConfig(early_stopping_patience=8), DefenseConfig(early_stopping_patience=2)
    assert intervention_key(none, None) < intervention_key(late, None) < intervention_key(early, None)


def test_worst_case_view_uses_its_own_adequacy():
    base = record(0, val=0.95, wc_adequate=False)
    dp = record(1, DP, val=0.70, epsilon=1.0, wc_adequate=True)
    assert [r.number for r in rank_candidates([base, dp], view="worst_case")] == [1]


def test_least_risky_and_pareto_front():
    a, b, c = record(0, val=0.9, risk=0.6), record(1, val=0.8, risk=0.2), record(2, val=0.7, risk=0.3)
    assert least_risky([a, b, c]).number == 1
    # c is dominated by b (lower utility, higher risk).
    assert [r.number for r in pareto_front([a, b, c])] == [1, 0]
    assert least_risky([]) is None


def test_the_report_says_why_an_adequate_baseline_lost():
    from tuner.report import _why_not_the_baseline
    from tuner.tune import Recommendation

    base = record(0, val=0.90)
    best = record(1, DefenseConfig(dropout=0.2), val=0.95)
    lesser = record(2, DefenseConfig(dropout=0.1), val=0.94)
    ranked = rank_candidates([base, best, lesser])
    assert ranked[0].number == 2  # floor 0.95 − 0.02 = 0.93: #1 and #2 tie, #2 intervenes less
    outcome = Recommendation(records=[base, best, lesser], chosen=ranked[0], confirmation=None)
    (line,) = _why_not_the_baseline(outcome)
    assert "0.9000 is below the tie floor 0.9300" in line and "intervention, #2, wins" in line
    assert _why_not_the_baseline(Recommendation(records=[base], chosen=base, confirmation=None)) == []
