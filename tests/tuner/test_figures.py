"""Study figures: their data worked out by hand, then what the drawn figures hold."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pytest
from PIL import Image

from defenses import DefenseConfig, DPSettings
from objectives import AttackScores
from tuner.config import config_from_dict
from tuner.figures import (
    ROC_ATTR,
    FigureData,
    figure_data,
    frontier_figure,
    frontier_points,
    ppv_curve,
    ppv_prior_figure,
    recommendation_text,
    render_png,
    roc_figure,
    roc_summary,
    write_figures,
)
from tuner.records import TrialRecord


def point(tpr: float, fpr: float, resolvable: bool = True) -> dict:
    return {"attack": "loss", "target_fpr": fpr, "tpr": tpr, "fpr": fpr, "resolvable": resolvable}


def record(number: int, *, val: float, risk: float, worst: float, dp: bool = False, baseline: bool = False,
           adequate: bool | None = None, points: list | None = None) -> TrialRecord:
    defense = DefenseConfig(dp=DPSettings(noise_multiplier=1.0) if dp else None, dropout=0.0 if baseline else 0.1)
    realistic = {"points": points or [point(0.2, 0.1)], "break_even_prior": 0.3, "risk": risk}
    return TrialRecord(
        number=number, is_baseline=baseline, defense=DefenseConfig() if baseline else defense,
        utility_validation=val, utility_validation_interval=(val - 0.02, val + 0.02),
        utility_test=val - 0.01, utility_test_interval=(val - 0.03, val + 0.01),
        risk=risk, risk_interval=(risk / 2, risk * 2), advantage=0.0, break_even_prior=0.3,
        adequate=risk <= 0.5 if adequate is None else adequate, uncertain=False,
        worst_case_risk=worst, worst_case_adequate=worst <= 0.5, worst_case_auc=0.6, worst_case_tpr={0.01: 0.02},
        epochs_run=5, epsilon=3.0 if dp else None, delta=1e-5 if dp else None,
        noise_multiplier=1.0 if dp else None, realistic=realistic, worst_case={"risk": worst},
    )


RECORDS = [
    record(0, val=0.90, risk=0.60, worst=0.80, baseline=True),
    record(1, val=0.88, risk=0.30, worst=0.70),
    record(2, val=0.85, risk=0.35, worst=0.45),  # dominated realistically by #1 (lower utility, higher risk)
    record(3, val=0.70, risk=0.05, worst=0.40, dp=True),
]


def data(**changes) -> FigureData:
    base = dict(records=RECORDS, roc={}, chosen=RECORDS[1], confirmed=True, chosen_realistic=RECORDS[1].realistic,
                worst_case_choice=RECORDS[2], max_ppv=0.5, prior=0.01, utility_name="accuracy")
    base.update(changes)
    return FigureData(**base)


def by_gid(fig, gid):
    return [artist for ax in fig.axes for artist in [*ax.lines, *ax.collections] if artist.get_gid() == gid]


class TestFrontierPoints:
    def test_realistic_front_drops_dominated_trials(self):
        # #2 (0.85, 0.35) is dominated by #1 (0.88, 0.30); the others trade utility for risk.
        assert frontier_points(RECORDS, "realistic") == [(0.05, 0.70), (0.30, 0.88), (0.60, 0.90)]

    def test_worst_case_front_uses_the_oracle_risk(self):
        # worst-case risks 0.80, 0.70, 0.45, 0.40: #3 (0.40, 0.70), #2 (0.45, 0.85), #1 (0.70, 0.88), #0 (0.80, 0.90)
        assert frontier_points(RECORDS, "worst_case") == [(0.40, 0.70), (0.45, 0.85), (0.70, 0.88), (0.80, 0.90)]


class TestPpvCurve:
    def test_max_over_resolvable_points(self):
        points = [point(0.30, 0.01), point(0.60, 0.10), point(0.9, 0.001, resolvable=False)]
        # π=0.01: 0.003/(0.003+0.0099)=0.232558..., 0.006/(0.006+0.099)=0.057142...
        # π=0.5:  0.30/0.31=0.967741..., 0.60/0.70=0.857142...
        assert ppv_curve(points, [0.01, 0.5]) == pytest.approx([0.003 / 0.0129, 0.30 / 0.31])

    def test_no_resolvable_point_means_no_claims(self):
        assert ppv_curve([point(0.5, 0.001, resolvable=False)], [0.1]) == [0.0]


class TestRocSummary:
    def test_small_curves_are_kept_exactly(self):
        scores = {"loss": AttackScores(members=np.array([3.0, 2.0, 0.5]), nonmembers=np.array([1.0, 0.0]),
                                       calibration=np.array([0.0]))}
        summary = roc_summary(scores)
        assert summary["n_members"] == 3 and summary["n_nonmembers"] == 2
        roc = summary["attacks"]["loss"]
        assert roc["fpr"] == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0]
        assert roc["tpr"] == pytest.approx([0.0, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0], abs=1e-8)

    def test_large_curves_are_sampled_on_a_log_grid(self):
        rng = np.random.default_rng(0)
        members, nonmembers = rng.normal(0.5, 1, 1000), rng.normal(0, 1, 1000)
        scores = {"rmia": AttackScores(members=members, nonmembers=nonmembers, calibration=nonmembers[:10])}
        roc = roc_summary(scores, max_points=50)["attacks"]["rmia"]
        fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
        assert len(fpr) == 50 and fpr[0] == 0.0 and fpr[1] == pytest.approx(1e-3) and fpr[-1] == 1.0
        # Each sample is the oracle TPR at that FPR. Where FPR = k/1000 exactly, the oracle
        # claims k non-members and every member scored above the (k+1)-th highest non-member
        # (the whole block of members before the next false positive comes free).
        ranked = np.sort(nonmembers)[::-1]
        checked = 0
        for f, t in zip(fpr[1:-1], tpr[1:-1]):
            k = int(round(f * 1000))
            if abs(f * 1000 - k) < 1e-6 and k > 0:
                assert t == pytest.approx(np.mean(members > ranked[k]), abs=1e-6)
                checked += 1
        assert checked >= 2  # 1e-3 and 1e-2 at least
        assert np.all(np.diff(tpr) >= -1e-12)


class TestFrontierFigure:
    def test_draws_trials_front_bound_and_marks(self):
        fig = frontier_figure(data())
        left, right = fig.axes[:2]
        (front,) = [line for line in left.lines if line.get_gid() == "frontier"]
        assert list(front.get_xdata()) == [0.05, 0.30, 0.60] and list(front.get_ydata()) == [0.70, 0.88, 0.90]
        bounds = [line for line in left.lines if list(line.get_xdata()) == [0.5, 0.5]]
        assert len(bounds) == 1  # the adequacy bound, a vertical line at max_ppv
        (star,) = [c for c in left.collections if c.get_gid() == "chosen"]
        assert star.get_offsets().tolist() == [[0.30, 0.88]]
        (star,) = [c for c in right.collections if c.get_gid() == "chosen"]
        assert star.get_offsets().tolist() == [[0.70, 0.88]]
        (worst,) = [c for c in right.collections if c.get_gid() == "worst_case_choice"]
        assert worst.get_offsets().tolist() == [[0.45, 0.85]]
        (dp_ok,) = [c for c in left.collections if c.get_gid() == "trials-dp-ok"]
        assert dp_ok.get_offsets().tolist() == [[0.05, 0.70]]
        (bad,) = [c for c in left.collections if c.get_gid() == "trials-nodp-bad"]
        assert bad.get_offsets().tolist() == [[0.60, 0.90]]  # the baseline is not adequate
        assert left.get_xscale() == "log"

    def test_every_trial_is_labelled_when_none_overprint(self):
        left = frontier_figure(data()).axes[0]
        assert sorted(t.get_text() for t in left.texts) == ["#0", "#1", "#2", "#3"]

    def test_a_cluster_keeps_one_label_and_the_important_ones(self):
        """Ten trials on one spot: one label there, the chosen trial's; the far trials keep theirs."""
        cluster = [record(n, val=0.88, risk=0.30, worst=0.70) for n in range(4, 14)]
        records = [*RECORDS, *cluster]
        left, right = frontier_figure(data(records=records, chosen=cluster[5])).axes[:2]
        labels = sorted(t.get_text() for t in left.texts)
        # #1 and #4..#13 sit on the same point (0.30, 0.88): only the recommendation (#9) is labelled there.
        assert labels == ["#0", "#2", "#3", "#9"]
        assert "#9" in [t.get_text() for t in right.texts]

    def test_renders_a_png(self):
        png = render_png(frontier_figure(data()))
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.size == (1200, 480)


class TestRocFigure:
    def test_log_log_curves_for_baseline_and_recommendation(self):
        roc = {
            0: {"n_members": 4, "n_nonmembers": 4,
                "attacks": {"loss": {"fpr": [0.0, 0.25, 0.5, 1.0], "tpr": [0.0, 0.5, 0.75, 1.0]}}},
            1: {"n_members": 4, "n_nonmembers": 4,
                "attacks": {"loss": {"fpr": [0.0, 0.25, 1.0], "tpr": [0.0, 0.25, 1.0]}}},
        }
        fig = roc_figure(data(roc=roc))
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        (base,) = by_gid(fig, "roc-baseline-loss")
        assert list(base.get_xdata()) == [0.25, 0.5, 1.0] and list(base.get_ydata()) == [0.5, 0.75, 1.0]
        assert base.get_linestyle() == "--"
        (chosen,) = by_gid(fig, "roc-recommended-loss")
        assert list(chosen.get_xdata()) == [0.25, 1.0] and chosen.get_linestyle() == "-"
        (ops,) = by_gid(fig, "operating")  # the recommendation's calibrated operating point
        assert ops.get_offsets().tolist() == [[0.1, 0.2]]
        assert ax.get_xlim()[0] == pytest.approx(0.25)  # 1 / n_nonmembers


class TestPpvPriorFigure:
    def test_curves_bound_and_prior(self):
        fig = ppv_prior_figure(data(), priors=[0.01, 0.1, 0.5])
        (chosen,) = by_gid(fig, "ppv-chosen")
        # the one point (TPR 0.2, FPR 0.1): π·0.2 / (π·0.2 + (1-π)·0.1)
        expected = [0.002 / (0.002 + 0.099), 0.02 / (0.02 + 0.09), 0.1 / (0.1 + 0.05)]
        assert list(chosen.get_ydata()) == pytest.approx(expected)
        ax = fig.axes[0]
        assert any(list(line.get_ydata()) == [0.5, 0.5] for line in ax.lines)  # the bound
        assert any(list(line.get_xdata()) == [0.01, 0.01] for line in ax.lines)  # the configured prior
        assert ax.get_xscale() == "log"


def test_recommendation_text_of_a_candidate():
    text = recommendation_text(data(confirmed=False))
    assert "trial #1" in text and "unconfirmed" in text
    assert "worst-case-driven choice: trial #2" in text and "(-0.0300)" in text


# --- from a study ------------------------------------------------------------------


def _attrs(rec: TrialRecord) -> dict:
    return {
        "defense": rec.defense.to_dict(), "utility_validation": rec.utility_validation,
        "utility_validation_interval": list(rec.utility_validation_interval), "utility_test": rec.utility_test,
        "utility_test_interval": list(rec.utility_test_interval),
        "realistic": {**rec.realistic, "interval": list(rec.risk_interval), "advantage": 0.0,
                      "adequate": rec.adequate, "uncertain": False},
        "worst_case": {"risk": rec.worst_case_risk, "adequate": rec.worst_case_adequate, "auc": 0.6,
                       "tpr_at_fpr": {"0.01": 0.02}},
        "epochs_run": 5, "epsilon": rec.epsilon, "delta": rec.delta, "noise_multiplier": rec.noise_multiplier,
        "baseline": rec.is_baseline,
        ROC_ATTR: {"n_members": 2, "n_nonmembers": 2, "attacks": {"loss": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1]}}},
    }


def test_figure_data_and_files_from_a_study(tmp_path):
    study = optuna.create_study()
    for rec in RECORDS:
        study.add_trial(optuna.trial.create_trial(value=rec.utility_validation, user_attrs=_attrs(rec)))
    config = config_from_dict({"adequacy": {"max_ppv": 0.5}})
    found = figure_data(study, config)
    assert [r.number for r in found.records] == [0, 1, 2, 3]
    assert sorted(found.roc) == [0, 1, 2, 3]
    # While trials run, the mark is the first candidate: the best adequate validation utility (#1, 0.88).
    assert found.chosen.number == 1 and not found.confirmed
    assert found.worst_case_choice.number == 2  # adequate under the oracle view with the best utility (0.85)
    written = write_figures(tmp_path / "figures", found)
    assert [p.name for _, p in written] == ["frontier.png", "roc.png", "ppv_vs_prior.png"]
    for _, path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"
