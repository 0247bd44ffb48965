"""The report's text tables of the risk suite, from hand-made records."""

from __future__ import annotations

from tuner.report import dp_bound_rows, exposure_line, exposure_rows, prior_rows


EXPOSURE = {
    "prior": 0.01, "max_ppv": 0.5, "attacks": ["rmia", "lira_offline"], "n_members": 100, "retrains": 3,
    "max_count": 2, "max_posterior": 0.8, "per_retrain": [2, 1, 0], "false_alarms_per_retrain": [1, 0, 0],
    "n_nonmembers": 100,
    "members": [
        {"row": 17, "retrains": 2, "posterior": 0.8, "attack": "lira_offline"},
        {"row": 4, "retrains": 1, "posterior": 0.6, "attack": "rmia"},
    ],
}


def test_exposure_line_names_count_bound_false_alarms_and_rows() -> None:
    assert exposure_line(EXPOSURE, max_exposed=1) == (
        "exposed members (posterior > 0.5 at π=0.01 under rmia, lira_offline): at most 2 per retrain, 2 in any "
        "of 3 (bound 1 per retrain); evaluation non-members above the same bound (false alarms): at most 1 of "
        "100; rows 17, 4"
    )


def test_exposure_without_a_ratio_attack_is_not_assessed() -> None:
    line = exposure_line({**EXPOSURE, "attacks": []}, max_exposed=None)
    assert line.startswith("exposed members: not assessed")


def test_exposure_rows() -> None:
    assert exposure_rows(EXPOSURE)[0] == {
        "row id": "17", "posterior (largest)": "0.8000", "attack": "lira_offline", "exposed in retrains": "2 of 3"
    }


def test_dp_bound_rows() -> None:
    bounds = {
        "epsilon": 1.0, "delta": 1e-5, "prior": 0.01,
        "realistic": [{"attack": "rmia", "target_fpr": 0.1, "fpr": 0.12, "tpr": 0.2, "tpr_bound": 0.336,
                       "ppv": 0.0168, "ppv_bound": 0.0275, "within": True}],
        "oracle": [{"attack": "oracle", "target_fpr": 0.01, "fpr": 0.01, "tpr": 0.05, "tpr_bound": 0.0272,
                    "ppv": 0.833, "ppv_bound": 0.731, "within": False}],
    }
    rows = dp_bound_rows(bounds)
    assert [r["view"] for r in rows] == ["realistic (π=0.01)", "oracle (π=0.5)"]
    assert rows[0]["α → realized FPR"] == "0.1 → 0.1200" and rows[1]["within"] == "NO"


def test_prior_rows_for_baseline_and_recommendation() -> None:
    # one resolvable point TPR 0.2, FPR 0.1: PPV(π) = 0.2π / (0.2π + 0.1(1 − π)); π = ½: 2/3, π = 0.01: 0.0198
    realistic = {"points": [{"resolvable": True, "tpr": 0.2, "fpr": 0.1},
                            {"resolvable": False, "tpr": 1.0, "fpr": 0.0}]}
    rows = prior_rows(realistic, None, [0.5, 0.01])
    assert rows == [
        {"π": "0.5", "PPV baseline": "0.6667", "PPV recommendation": "—"},
        {"π": "0.01", "PPV baseline": "0.0198", "PPV recommendation": "—"},
    ]
