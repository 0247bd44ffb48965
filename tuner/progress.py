"""Progress lines while trials run: trials done, best so far, time left."""

from __future__ import annotations

import sys
import time
from typing import Sequence, TextIO

import optuna

from defenses import DefenseConfig, EpochLog
from tuner.trial import Evaluation


class ProgressPrinter:
    """A trial observer that prints one line per finished trial to ``stream``.

    Args:
        total: trials the study should hold.
        done: trials it already held when this worker started (a continued
            study, or other workers' trials); time left is estimated from
            this worker's own pace.
    """

    def __init__(self, total: int, *, done: int = 0, stream: TextIO | None = None, utility_name: str = "utility"):
        self.total = total
        self.stream = stream or sys.stderr
        self.utility_name = utility_name
        self.done = done
        self.finished_here = 0
        self.best: tuple[float, int] | None = None
        self._started = time.perf_counter()

    def trial_started(self, number: int, defense: DefenseConfig) -> None:
        self._print(f"[{self.done + 1}/{self.total}] trial #{number}: {defense.describe()} ...")

    def epoch_finished(self, number: int, log: EpochLog) -> None:
        pass

    def trial_finished(self, trial: optuna.trial.FrozenTrial, evaluation: Evaluation | None) -> None:
        self.done += 1
        self.finished_here += 1
        elapsed = time.perf_counter() - self._started
        left = elapsed / self.finished_here * max(0, self.total - self.done)
        if evaluation is None:
            outcome = trial.state.name.lower()
        else:
            risk = evaluation.realistic
            verdict = "adequate" if risk.adequate else "NOT adequate"
            if risk.adequate and (self.best is None or evaluation.utility_validation > self.best[0]):
                self.best = (evaluation.utility_validation, trial.number)
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

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
