"""A `privtune tune` killed with SIGKILL mid-trial, then run again: nothing finished is lost.

Real processes on a real SQLite study. The rerun marks the killed trial
failed at once (its worker is a dead process of this machine, see
:mod:`tuner.liveness`), runs its slot again and finishes the study.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tuner.liveness import WORKER_ATTR, is_dead_here, this_worker

State = optuna.trial.TrialState

INTERRUPTED = {
    "study": {"name": "interrupted", "trials": 4, "seed": 5},
    "training": {"epochs": 30},
    "confirmation": {"seeds": 1},
    "threat_model": {"calibration_fprs": [0.01, 0.1]},
    "search_space": {"early_stopping": {"use": [False]}},
}


def load(db: Path) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="interrupted", storage=f"sqlite:///{db}")
    except (KeyError, Exception):  # not created yet, or its tables are being created
        return None


def wait_for_a_trial_in_progress(process: subprocess.Popen, db: Path, log: Path, timeout: float = 300) -> None:
    """Until the study holds a finished trial and a later one RUNNING (then we are mid-trial)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted:\n" + log.read_text()
        study = load(db)
        if study is not None:
            states = [t.state for t in study.get_trials(deepcopy=False)]
            if State.COMPLETE in states and states[-1] == State.RUNNING and len(states) >= 2:
                return
        time.sleep(0.05)
    pytest.fail("no trial was in progress within the timeout")


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_finishes_the_study(tmp_path):
    config = tmp_path / "interrupted.yaml"
    config.write_text(yaml.safe_dump(INTERRUPTED, sort_keys=False))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "tuner.cli", "tune", str(config), "--out", str(out)]
    db = out / "study.db"

    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        first = subprocess.Popen(command, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_a_trial_in_progress(first, db, log)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        first.wait()

    before = load(db).trials
    killed = before[-1]
    assert killed.state == State.RUNNING  # what a killed process leaves behind
    assert killed.system_attrs[WORKER_ATTR]["pid"] == first.pid
    finished_before = {t.number: (t.params, t.values) for t in before if t.state == State.COMPLETE}
    assert finished_before

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert rerun.returncode in (0, 3), rerun.stdout + rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert f"trial #{killed.number} was left running by a worker that is gone" in rerun.stderr
    # The rerun's progress counts the trials finished before the kill.
    first_line = next(line for line in rerun.stderr.splitlines() if line.startswith("["))
    assert first_line.startswith(f"[{len(finished_before) + 1}/4] trial #{len(before)}: ")

    after = load(db).trials
    assert after[killed.number].state == State.FAIL  # marked failed, not left running
    assert not [t for t in after if t.state in (State.RUNNING, State.WAITING)]
    finished = [t for t in after if t.state in (State.COMPLETE, State.PRUNED)]
    assert len(finished) == 4  # the study is finished: its slot ran again
    assert sorted(t.number for t in after) == list(range(len(after)))
    for number, (params, values) in finished_before.items():  # nothing finished was lost or redone
        assert (after[number].params, after[number].values) == (params, values)
    baselines = [t for t in after if t.user_attrs.get("baseline") and t.state != State.FAIL]
    assert len(baselines) == 1
    assert (out / "report.md").is_file() and (out / "trials.csv").is_file()
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no partial files


def test_same_seed_gives_the_same_trials_and_recommendation(tmp_path):
    config = tmp_path / "same.yaml"
    small = {**INTERRUPTED, "study": {"name": "same", "trials": 3, "seed": 9}, "training": {"epochs": 4}}
    config.write_text(yaml.safe_dump(small, sort_keys=False))
    outputs = []
    for name in ("a", "b"):
        result = subprocess.run(
            [sys.executable, "-m", "tuner.cli", "tune", str(config), "--out", str(tmp_path / name), "--quiet"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode in (0, 3), result.stderr
        rec = tmp_path / name / "recommendation.yaml"
        with open(tmp_path / name / "trials.csv") as handle:  # every column but the wall time
            rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
        outputs.append((rows, rec.read_text() if rec.exists() else None))
    assert len(outputs[0][0]) == 3
    assert outputs[0] == outputs[1]


class TestLiveness:
    def test_this_process_is_alive(self) -> None:
        assert not is_dead_here(this_worker())

    def test_a_killed_process_is_dead_even_before_it_is_reaped(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        worker = {**this_worker(), "pid": child.pid}
        from tuner.liveness import _start_time

        worker["started"] = _start_time(child.pid)
        assert not is_dead_here(worker)
        os.kill(child.pid, signal.SIGKILL)
        time.sleep(0.2)  # a zombie now: killed, not yet waited for
        assert is_dead_here(worker)
        child.wait()
        assert is_dead_here(worker)

    def test_a_reused_pid_is_not_the_dead_worker(self) -> None:
        worker = {**this_worker(), "started": this_worker()["started"] - 1}  # same pid, other start time
        assert is_dead_here(worker)
        assert not is_dead_here({**this_worker()})

    def test_other_machines_and_namespaces_wait_for_the_heartbeat(self) -> None:
        gone = {**this_worker(), "pid": 2**22 + 7, "started": 1}
        assert is_dead_here(gone)
        assert not is_dead_here({**gone, "host": "another-machine"})
        assert not is_dead_here({**gone, "pid_namespace": "pid:[1]"})
        assert not is_dead_here({**gone, "boot": "another-boot"})
        assert not is_dead_here(None) and not is_dead_here({})


@pytest.mark.slow
def test_sigterm_mid_trial_marks_it_failed_and_exits_143(tmp_path):
    """SIGTERM (systemd, Kubernetes, Slurm) stops a run as Ctrl-C does: no trial is left running."""
    config = tmp_path / "interrupted.yaml"
    config.write_text(yaml.safe_dump(INTERRUPTED, sort_keys=False))
    out = tmp_path / "run"
    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        first = subprocess.Popen(
            [sys.executable, "-m", "tuner.cli", "tune", str(config), "--out", str(out)],
            cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_a_trial_in_progress(first, out / "study.db", log)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 143
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    text = log.read_text()
    assert "privtune: terminated; finished trials are kept in the study" in text
    assert "Traceback" not in text
    trials = load(out / "study.db").trials
    assert trials[-1].state == State.FAIL  # marked failed on the way out, not left RUNNING
    assert not [t for t in trials if t.state in (State.RUNNING, State.WAITING)]
    assert [t for t in trials if t.state == State.COMPLETE]
