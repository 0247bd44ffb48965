"""Progress lines while trials run: trials done, best so far, time left."""

from __future__ import annotations

import sys
import time
from typing import Sequence, TextIO

import optuna

from defenses import DefenseConfig, EpochLog
from tuner.records import has_evaluation, record_from_trial
from tuner.trial import Evaluation

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class ProgressPrinter:
    """A trial observer that prints one line per finished trial to ``stream``.

    Args:
        total: trials the study should hold.
        study: the shared study. When given, "trials done" and "best
            adequate so far" are the whole study's (a continued study,
            other workers' trials), read from it when a trial finishes; without it
            they count the trials this printer has seen since ``done``.
        done: trials already finished when this worker started (without
            ``study``).
        confirmations: retrains that follow the last trial (the
            recommendation's confirmation seeds), each about a trial's
            work; the time left includes them.
        stream: where lines go (default standard error).
        utility_name: the utility metric's name in the lines.

    Time left is this worker's own pace (seconds per trial it finished)
    times what is left, as if no other worker helped.
    """

    def __init__(
        self,
        total: int,
        *,
        study: optuna.Study | None = None,
        done: int = 0,
        confirmations: int = 0,
        stream: TextIO | None = None,
        utility_name: str = "utility",
    ):
        self.total = total
        self.study = study
        self.confirmations = confirmations
        self.stream = stream or sys.stderr
        self.utility_name = utility_name
        self.done = done
        self.finished_here = 0
        self.best: tuple[float, int] | None = None
        self._started = time.perf_counter()
        self._read: set[int] = set()  # completed trials of the study already taken into ``best``
        self._read_study()

    def trial_started(self, number: int, defense: DefenseConfig) -> None:
        self._print(f"[{self.done + 1}/{self.total}] trial #{number}: {defense.describe()} ...")

    def epoch_finished(self, number: int, log: EpochLog) -> None:
        pass

    def trial_finished(self, trial: optuna.trial.FrozenTrial, evaluation: Evaluation | None) -> None:
        self.done += 1
        self.finished_here += 1
        if evaluation is not None and evaluation.realistic.adequate:
            self._consider_best(evaluation.utility_validation, trial.number)
        self._read_study()  # the study's count and best include this trial and other workers'
        elapsed = time.perf_counter() - self._started
        left = elapsed / self.finished_here * (max(0, self.total - self.done) + self.confirmations)
        if evaluation is None:
            outcome = trial.state.name.lower()
        else:
            risk = evaluation.realistic
            verdict = "adequate" if risk.adequate else "NOT adequate"
            outcome = (
                f"{self.utility_name} {evaluation.utility_validation:.4f} (val), "
                f"PPV {risk.risk:.3f} [{risk.interval[0]:.3f}, {risk.interval[1]:.3f}] {verdict}, "
                f"AUC(worst) {evaluation.worst_case.auc:.3f}"
                + (f", ε {evaluation.epsilon:.2f}" if evaluation.epsilon is not None else "")
            )
        best = f"best adequate: #{self.best[1]} ({self.best[0]:.4f})" if self.best else "best adequate: none yet"
        self._print(
            f"[{self.done}/{self.total}] trial #{trial.number} {outcome} | {best} | "
            f"{elapsed:.0f}s elapsed, ~{left:.0f}s left"
        )

    def trials_recovered(self, numbers: Sequence[int]) -> None:
        listed = ", ".join(f"#{n}" for n in numbers)
        self._print(
            f"trial {listed} was left running by a worker that is gone (killed or lost): "
            "marked failed, and its slot runs again"
        )

    def _read_study(self) -> None:
        """Count the study's finished trials and take in the ones completed since the last read."""
        if self.study is None:
            return
        finished = self.study.get_trials(deepcopy=False, states=_FINISHED)
        self.done = len(finished)
        for trial in finished:
            if trial.number in self._read or trial.state != optuna.trial.TrialState.COMPLETE:
                continue
            self._read.add(trial.number)
            if has_evaluation(trial):
                record = record_from_trial(trial)
                if record.adequate:
                    self._consider_best(record.utility_validation, record.number)

    def _consider_best(self, utility: float, number: int) -> None:
        """Keep the higher validation utility; on a tie, the earlier trial."""
        if self.best is None or (utility, -number) > (self.best[0], -self.best[1]):
            self.best = (utility, number)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
