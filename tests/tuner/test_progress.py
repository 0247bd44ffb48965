"""Progress lines of long runs: trials done, best adequate so far, time left."""

from __future__ import annotations

import io
from types import SimpleNamespace

import optuna

import tuner.progress as progress
from defenses import DefenseConfig
from tuner.progress import ProgressPrinter
from tuner.records import trial_attrs


def evaluation(val: float, ppv: float, *, adequate: bool, epsilon: float | None = None):
    return SimpleNamespace(
        utility_validation=val,
        realistic=SimpleNamespace(risk=ppv, interval=(ppv / 2, ppv * 2), adequate=adequate),
        worst_case=SimpleNamespace(auc=0.61),
        epsilon=epsilon,
    )


def frozen(number: int, state=optuna.trial.TrialState.COMPLETE):
    trial = optuna.trial.create_trial(state=state, value=None if state != optuna.trial.TrialState.COMPLETE else 0.0)
    trial.number = number
    return trial


def test_lines_show_trials_done_best_so_far_and_time_left(monkeypatch):
    clock = iter([100.0, 110.0, 130.0, 160.0, 200.0])  # start, then after each trial
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    printer = ProgressPrinter(4, stream=out, utility_name="accuracy")
    printer.trial_started(0, DefenseConfig())
    printer.trial_finished(frozen(0), evaluation(0.80, 0.02, adequate=True))
    printer.trial_finished(frozen(1), evaluation(0.90, 0.70, adequate=False))
    printer.trial_finished(frozen(2, optuna.trial.TrialState.PRUNED), None)
    printer.trial_finished(frozen(3), evaluation(0.85, 0.03, adequate=True, epsilon=2.5))
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/4] trial #0: no defense ..."
    # elapsed 10 s after 1 of 4 trials: 10/1 · 3 = 30 s left
    assert lines[1].startswith("[1/4] trial #0 accuracy 0.8000 (val), PPV 0.020 [0.010, 0.040] adequate")
    assert lines[1].endswith("| best adequate: #0 (0.8000) | 10s elapsed, ~30s left")
    # the better trial #1 is not adequate: the best stays #0; 30 s after 2 trials -> 15·2 = 30 s left
    assert "NOT adequate" in lines[2] and lines[2].endswith("| best adequate: #0 (0.8000) | 30s elapsed, ~30s left")
    # a pruned trial counts as done; 60 s after 3 -> 20 s left
    assert lines[3] == "[3/4] trial #2 pruned | best adequate: #0 (0.8000) | 60s elapsed, ~20s left"
    assert lines[4].endswith(", ε 2.50 | best adequate: #3 (0.8500) | 100s elapsed, ~0s left")


def test_no_adequate_trial_yet():
    out = io.StringIO()
    printer = ProgressPrinter(2, stream=out)
    printer.trial_finished(frozen(0), evaluation(0.8, 0.9, adequate=False))
    assert "best adequate: none yet" in out.getvalue()


def test_time_left_counts_the_confirmation_retrains(monkeypatch):
    clock = iter([0.0, 12.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    printer = ProgressPrinter(3, confirmations=2, stream=out)
    printer.trial_finished(frozen(0), evaluation(0.8, 0.02, adequate=True))
    # 12 s for 1 trial; 2 trials and 2 confirmation retrains left: 4 · 12 = 48 s
    assert out.getvalue().rstrip().endswith("| 12s elapsed, ~48s left")


def test_a_continued_or_shared_study_counts_every_trial_in_it(small_run):
    """Done and best adequate come from the study, whoever ran its trials."""
    study = small_run.study
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    adequate = [
        (trial_attrs(t)["utility_validation"], t.number)
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and trial_attrs(t)["realistic"]["adequate"]
    ]
    assert finished and adequate
    best_utility = max(u for u, _ in adequate)
    best_number = min(n for u, n in adequate if u == best_utility)
    out = io.StringIO()
    printer = ProgressPrinter(len(finished) + 2, study=study, stream=out)
    printer.trial_started(99, DefenseConfig())
    assert out.getvalue() == f"[{len(finished) + 1}/{len(finished) + 2}] trial #99: no defense ...\n"
    # This worker's own worse trial: the study's best stays; the count is the study's.
    printer.trial_finished(frozen(99), evaluation(best_utility - 0.5, 0.01, adequate=True))
    line = out.getvalue().splitlines()[-1]
    assert line.startswith(f"[{len(finished)}/{len(finished) + 2}] trial #99 ")
    assert f"| best adequate: #{best_number} ({best_utility:.4f}) |" in line
