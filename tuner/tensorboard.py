"""TensorBoard logs of a study: per-trial curves and the HParams dashboard.

Each trial writes to its own run folder ``tb/trial-NNNN``: per-epoch curves
(training loss, validation utility, ε spent) while it trains, then the
HParams session (the defense settings) and its final metrics. Every trial
logs the same hyperparameter names (off knobs as 0) so that the HParams
table, parallel-coordinates and scatter views line up across trials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from defenses import DefenseConfig, EpochLog
from tuner.records import BASELINE_ATTR
from tuner.trial import Evaluation

METRIC_TAGS = {
    "utility_test": "metrics/utility_test",
    "utility_validation": "metrics/utility_validation",
    "realistic_ppv": "metrics/realistic_ppv",
    "worst_case_auc": "metrics/worst_case_auc",
    "epsilon": "metrics/epsilon",
    "adequate": "metrics/adequate",
}


def defense_hparams(defense: DefenseConfig) -> dict[str, Any]:
    """The defense as a flat dict with the same keys for every trial."""
    dp = defense.dp
    return {
        "dp": "on" if dp is not None else "off",
        "noise_multiplier": float(dp.noise_multiplier or 0.0) if dp else 0.0,
        "max_grad_norm": float(dp.max_grad_norm) if dp else 0.0,
        "target_epsilon": float(dp.target_epsilon or 0.0) if dp else 0.0,
        "weight_decay": float(defense.weight_decay),
        "dropout": float(defense.dropout),
        "label_smoothing": float(defense.label_smoothing),
        "early_stopping_patience": int(defense.early_stopping_patience or 0),
    }


def trial_metrics(evaluation: Evaluation) -> dict[str, float]:
    """The final figures of a trial, keyed by their TensorBoard tags."""
    values = {
        "utility_test": evaluation.utility_test,
        "utility_validation": evaluation.utility_validation,
        "realistic_ppv": evaluation.realistic.risk,
        "worst_case_auc": evaluation.worst_case.auc,
        "epsilon": evaluation.epsilon if evaluation.epsilon is not None else 0.0,
        "adequate": float(evaluation.realistic.adequate),
    }
    return {METRIC_TAGS[k]: float(v) for k, v in values.items()}


class TensorBoardLogger:
    """A trial observer that writes TensorBoard event files under ``logdir``."""

    def __init__(self, logdir: Path):
        self.logdir = Path(logdir)
        self._writers: dict[int, SummaryWriter] = {}

    def run_dir(self, number: int) -> Path:
        return self.logdir / f"trial-{number:04d}"

    def trial_started(self, number: int, defense: DefenseConfig) -> None:
        self._writer(number)

    def epoch_finished(self, number: int, log: EpochLog) -> None:
        writer = self._writer(number)
        writer.add_scalar("train/loss", log.train_loss, log.epoch)
        if log.validation_utility is not None:
            writer.add_scalar("validation/utility", log.validation_utility, log.epoch)
        if log.epsilon is not None:
            writer.add_scalar("privacy/epsilon", log.epsilon, log.epoch)

    def trial_finished(self, trial: optuna.trial.FrozenTrial, evaluation: Evaluation | None) -> None:
        writer = self._writers.pop(trial.number, None)
        if evaluation is None:  # pruned or failed: close its curves, no session
            if writer is not None:
                writer.close()
            return
        writer = writer or SummaryWriter(str(self.run_dir(trial.number)))
        params = defense_hparams(evaluation.defense)
        params["baseline"] = "yes" if trial.user_attrs.get(BASELINE_ATTR) else "no"
        metrics = trial_metrics(evaluation)
        experiment, session_start, session_end = hparams(
            params, metrics, hparam_domain_discrete={"dp": ["off", "on"], "baseline": ["no", "yes"]}
        )
        file_writer = writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, 0)
        writer.close()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, number: int) -> SummaryWriter:
        if number not in self._writers:
            self._writers[number] = SummaryWriter(str(self.run_dir(number)))
        return self._writers[number]
