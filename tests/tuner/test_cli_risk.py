"""The risk suite through the command line, in subprocesses (as a user runs it)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from defenses import load_recommendation
from tuner.records import trial_attrs

pytestmark = pytest.mark.slow

FAST = {"training": {"epochs": 3}, "confirmation": {"seeds": 1}, "threat_model": {"calibration_fprs": [0.01, 0.1]}}


def privtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuner.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "threat, message",
    [
        ({"attacks": ["loss", "shadow"]}, "threat_model.attacks[1]: must be one of ['confidence', 'lira_offline', "
                                          "'lira_online', 'loss', 'modified_entropy', 'rmia'], but got 'shadow'"),
        ({"reference_models": 5, "max_reference_models": 4},
         "threat_model.reference_models: must be an integer in [1, 4] (threat_model.max_reference_models = 4) "
         "because attacks ['rmia'] train reference models, but got 5"),
        ({"calibration_fprs": [0.01, 1.0]}, "threat_model.calibration_fprs[1]: must be a number in (0, 1), but got 1.0"),
        ({"calibration_fprs": [0.0]}, "threat_model.calibration_fprs[0]: must be a number in (0, 1), but got 0.0"),
        ({"attacks": ["lira_online"]}, "threat_model.attacks: must be attacks of the realistic attacker"),
    ],
    ids=["unknown-attack", "too-many-reference-models", "fpr-one", "fpr-zero", "online-attack"],
)
def test_bad_attack_settings_exit_2_with_the_key(tmp_path: Path, threat: dict, message: str) -> None:
    config = write(tmp_path / "bad.yaml", {"threat_model": threat})
    result = privtune("tune", str(config), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_audit_checks_the_same_config(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.yaml", {"threat_model": {"attacks": ["shadow"], "calibration_fprs": [1.5]}})
    result = privtune("audit", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "threat_model.attacks[0]: must be one of" in result.stderr
    assert "threat_model.calibration_fprs[0]: must be a number in (0, 1), but got 1.5" in result.stderr


def test_reference_part_smaller_than_the_members_exits_2(tmp_path: Path) -> None:
    # the pool rule: each reference model trains on as many records as the members; a pool too small for that
    config = write(tmp_path / "bad.yaml", {"data": {"pool": {"calibration": 0.5, "population": 0.4}}})
    result = privtune("audit", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.pool: must be fractions that leave the reference models as many records as the members" in result.stderr


def test_audit_bad_shadow_count_and_tampered_defense_exit_2(tmp_path: Path) -> None:
    odd = privtune("audit", "--shadow-models", "5", cwd=tmp_path)
    assert odd.returncode == 2 and "--shadow-models: must be an even integer >= 4, but got 5" in odd.stderr
    tampered = tmp_path / "recommendation.yaml"
    tampered.write_text(yaml.safe_dump({"schema_version": 1, "defense": {"dropout": 7}, "recipe": {}}))
    result = privtune("audit", "--defense", str(tampered), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "defense.dropout" in result.stderr


def test_audit_prints_both_views(tmp_path: Path) -> None:
    config = write(tmp_path / "small.yaml", {**FAST, "audit": {"shadow_models": 4}})
    result = privtune("audit", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "WORST CASE" in out and "REALISTIC" in out
    assert "lira_online (target, 4 shadows)" in out and "lira_online (pooled ×5 models)" in out
    assert "worst-case view: PPV at prior ½" in out and "realistic view:  PPV" in out


def test_random_budget_search_reports_a_finite_tuning_epsilon(tmp_path: Path) -> None:
    config = write(
        tmp_path / "dp.yaml",
        {
            **FAST,
            "study": {"name": "dp", "seed": 2,
                      "search_budget": {"distribution": "truncated_negative_binomial", "eta": 1, "gamma": 0.5}},
            "search_space": {"dp": {"use": [True], "noise_multiplier": {"low": 0.8, "high": 2.0},
                                    "max_grad_norm": 1.0, "accountant": "rdp"},
                             "weight_decay": None, "dropout": None, "label_smoothing": None,
                             "early_stopping": {"use": [False]}},
            "adequacy": {"max_ppv": 0.9},
        },
    )
    out = tmp_path / "run"
    result = privtune("tune", str(config), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    study = optuna.load_study(study_name="dp", storage=f"sqlite:///{out / 'study.db'}")
    budget = study.user_attrs["search_budget"]
    assert budget["distribution"] == "truncated_negative_binomial" and budget["runs"] >= 1
    assert len(study.trials) == budget["runs"]
    assert not any(t.user_attrs.get("baseline") for t in study.trials)  # no undefended run in this mode
    rec = load_recommendation(out / "recommendation.yaml")
    cost = rec.document["privacy"]["tuning_cost"]
    assert cost["search_basis"] == "repeat_and_select"
    assert math.isfinite(cost["search_epsilon"]) and cost["search_epsilon"] > cost["per_run_epsilon_rdp"]
    assert cost["with_final_run_epsilon"] > cost["search_and_confirmation_epsilon"] >= cost["search_epsilon"]
    report = (out / "report.md").read_text()
    assert "## Which ε holds for what" in report and "Papernot & Steinke" in report
    assert "DP bounds (ε =" in report
    # resuming draws nothing new and runs nothing more
    again = privtune("tune", str(config), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name="dp", storage=f"sqlite:///{out / 'study.db'}").trials) == budget["runs"]


def test_exposure_is_recorded_and_exported(tmp_path: Path) -> None:
    config = write(
        tmp_path / "exposed.yaml",
        {**FAST, "study": {"name": "e", "trials": 2},
         "threat_model": {"attacks": ["loss", "lira_offline"], "calibration_fprs": [0.1], "membership_prior": 0.2},
         "adequacy": {"max_ppv": 0.9, "max_exposed": 1000}},
    )
    out = tmp_path / "run"
    result = privtune("tune", str(config), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    study = optuna.load_study(study_name="e", storage=f"sqlite:///{out / 'study.db'}")
    first = study.trials[0]
    assert trial_attrs(first)["exposure"]["attacks"] == ["lira_offline"]
    assert first.system_attrs["constraints:exposure"] == trial_attrs(first)["exposure"]["count"] - 1000
    rec = load_recommendation(out / "recommendation.yaml")
    exposed = rec.document["expected"]["exposed_members"]
    assert exposed["max_exposed"] == 1000 and exposed["posterior_bound"] == 0.9
    assert set(exposed["rows"]) == {m["row"] for m in exposed["members"]}
    assert rec.document["expected"]["realistic_risk"]["ppv_over_prior"].keys() >= {"0.5", "0.2", "0.01"}
    assert "### Exposed members" in (out / "report.md").read_text()
