"""The `privtune` command end to end: real training, a real SQLite study, real files.

These run the CLI in a subprocess (as a user would) on small configs; they are
marked slow and still run in CI.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from defenses import load_recommendation
from tuner.records import trial_attrs

pytestmark = pytest.mark.slow

SMALL = {
    "study": {"name": "small", "trials": 3, "seed": 1},
    "training": {"epochs": 6},
    "confirmation": {"seeds": 2},
    "threat_model": {"calibration_fprs": [0.01, 0.1]},
}


def write_config(path: Path, overrides: dict) -> Path:
    path.write_text(yaml.safe_dump(overrides, sort_keys=False))
    return path


def privtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuner.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_tune_writes_every_output_and_continues_the_study(tmp_path):
    config = write_config(tmp_path / "small.yaml", SMALL)
    out = tmp_path / "run"
    first = privtune("tune", str(config), "--out", str(out), cwd=tmp_path)
    assert first.returncode in (0, 3), first.stderr
    assert "Traceback" not in first.stderr
    assert "[3/3] trial #2" in first.stderr  # progress lines
    for name in ("study.db", "trials.csv", "report.md", "config.yaml"):
        assert (out / name).is_file(), name
    # The connections were closed: SQLite checkpointed its write-ahead log into study.db and removed it.
    assert not (out / "study.db-wal").exists() and not (out / "study.db-shm").exists()
    assert "Frontier" in (out / "report.md").read_text()

    study = optuna.load_study(study_name="small", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    assert study.trials[0].user_attrs["baseline"] is True
    assert study.trials[0].params  # the baseline was enqueued with explicit off values
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            # Optuna's adequacy constraint is risk − bound (≤ 0 feasible), bound 0.5 by default.
            risk = trial_attrs(trial)["realistic"]["risk"]
            assert trial.constraints == {"adequacy": pytest.approx(risk - 0.5)}

    # --trials is the study's size: the same size again runs nothing, a larger one extends it.
    again = privtune("tune", str(config), "--out", str(out), "--trials", "3", cwd=tmp_path)
    assert again.returncode == first.returncode, again.stderr
    assert "already holds 3 of 3 trials" in again.stderr
    assert len(optuna.load_study(study_name="small", storage=f"sqlite:///{out / 'study.db'}").trials) == 3
    second = privtune("tune", str(config), "--out", str(out), "--trials", "5", cwd=tmp_path)
    assert second.returncode in (0, 3), second.stderr
    assert "[4/5] trial #3" in second.stderr and "[5/5] trial #4" in second.stderr
    study = optuna.load_study(study_name="small", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 5
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert yaml.safe_load((out / "config.yaml").read_text())["study"]["trials"] == 5  # --trials, as resolved
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 1
    smaller = privtune("tune", str(config), "--out", str(out), "--trials", "2", cwd=tmp_path)
    assert "already holds 5 trials, more than the 2 asked for: no trial to run" in smaller.stderr
    assert len(optuna.load_study(study_name="small", storage=f"sqlite:///{out / 'study.db'}").trials) == 5
    with open(out / "trials.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 5
    if second.returncode == 0:
        rec = load_recommendation(out / "recommendation.yaml")
        assert rec.document["study"]["trials_completed"] == sum(
            t.state == optuna.trial.TrialState.COMPLETE for t in study.trials
        )
        assert json.loads((out / "recommendation.json").read_text()) == dict(rec.document)
        assert "RECOMMENDED DEFENSE" in second.stdout or "NO DEFENSE NEEDED" in second.stdout


def test_no_adequate_defense_exits_3_and_still_reports(tmp_path):
    # Only the baseline can be tried, and the bound (0.011) sits barely above the prior (0.01):
    # any membership signal at all makes the undefended model inadequate.
    overrides = {
        **SMALL,
        "study": {"name": "none", "trials": 1, "seed": 0},
        "training": {"epochs": 40, "learning_rate": 0.1},
        "adequacy": {"max_ppv": 0.011},
    }
    config = write_config(tmp_path / "strict.yaml", overrides)
    result = privtune("tune", str(config), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "NO ADEQUATE DEFENSE" in result.stdout
    assert (tmp_path / "run" / "report.md").is_file()
    assert not (tmp_path / "run" / "recommendation.yaml").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"study": {"nmae": "x"}}, "study.nmae: unknown key"),
        ({"search_space": {"dp": {"noise_multiplier": -1}}}, "search_space.dp.noise_multiplier"),
        ({"data": {"source": "csv", "path": "people.csv", "target": "income"}}, "income"),
        ({"data": {"source": "csv", "path": "one_class.csv", "target": "label"}}, "class"),
    ],
    ids=["unknown-key", "negative-noise", "missing-target-column", "single-class"],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, overrides, message):
    rng = np.random.default_rng(0)
    rows = ["age,job,label"] + [f"{rng.integers(18, 80)},clerk,yes" for _ in range(300)]
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "one_class.csv").write_text("\n".join(rows) + "\n")
    config = write_config(tmp_path / "bad.yaml", overrides)
    out = tmp_path / "run"
    result = privtune("tune", str(config), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert not out.exists()


def test_bad_input_leaves_an_existing_run_untouched(tmp_path):
    config = write_config(tmp_path / "small.yaml", {**SMALL, "study": {"name": "small", "trials": 1}})
    out = tmp_path / "run"
    assert privtune("tune", str(config), "--out", str(out), cwd=tmp_path).returncode in (0, 3)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    bad = write_config(tmp_path / "bad.yaml", {**SMALL, "threat_model": {"membership_prior": 2}})
    result = privtune("tune", str(bad), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert "threat_model.membership_prior" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
