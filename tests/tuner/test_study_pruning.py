"""When trials report to the pruner, and that the pruner acts on those reports."""

from __future__ import annotations

import optuna

from tuner.config import config_from_dict
from tuner.study import _pruner, pruning_epochs


def test_pruning_epochs_start_after_a_third_and_check_about_ten_times() -> None:
    # 30 epochs: warm-up 30 // 3 = 10, then every 30 // 10 = 3 epochs.
    assert sorted(pruning_epochs(30)) == [10, 13, 16, 19, 22, 25, 28]
    assert sorted(pruning_epochs(6)) == [2, 3, 4, 5, 6]  # warm-up 2, every epoch
    assert sorted(pruning_epochs(1)) == [1]


def test_a_trial_in_the_bottom_quarter_at_a_pruning_epoch_is_pruned() -> None:
    config = config_from_dict({"training": {"epochs": 30}})
    study = optuna.create_study(direction="maximize", pruner=_pruner(config))
    steps = sorted(pruning_epochs(30))
    for value in (0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97):  # the 8 startup trials
        trial = study.ask()
        for step in steps:
            trial.report(value, step)
        study.tell(trial, value)
    weak, strong = study.ask(), study.ask()
    weak.report(0.5, steps[0])
    strong.report(0.96, steps[0])
    assert weak.should_prune() and not strong.should_prune()
