"""The attacker's reference models of a trial: trained here, or beside the target.

A trial trains its target and then the attacker's K reference models
(:func:`train_references`, one vectorized ensemble). The two are
independent: each run seeds everything it draws, so the reference models
come out the same whether they train before, after or at the same time as
the target. On the CPU, where privtune trains a small model on one thread,
a second core would sit idle; :class:`ReferenceTraining` with two processes
trains the reference models there, in a forked helper process
(:mod:`tuner.helper_process`), while the target trains in this one. Same
models, bit for bit (a test checks), in about the time of the slower of the two.

``training.processes`` chooses: ``1`` trains everything in this process;
``2`` uses the helper; ``auto`` (default) uses it on the CPU when this
process trains on one thread and may run on a second core (see
:func:`resolve_processes`). On CUDA the helper is never used: a CUDA
context cannot be forked, and the GPU, not the CPU, is then the limit.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable

import torch

from defenses import DefenseConfig, TrainedModel, train_ensemble
from tuner.errors import ConfigError
from tuner.helper_process import HelperGone, HelperProcess, Pending, raise_if_abandoned
from tuner.user_code import build_target_model

if TYPE_CHECKING:
    from tuner.trial import TrialContext


def resolve_processes(setting: int | str, *, device: torch.device, threads: int | None) -> int:
    """Processes a trial trains in: 1, or 2 (reference models beside the target).

    ``auto`` gives 2 when the device is the CPU, each process trains on one
    thread (``threads``, see :func:`defenses.cpu_threads`) and this process
    may run on at least two cores; else 1. An explicit 2 on CUDA is refused.

    Example:
        >>> resolve_processes(1, device=torch.device("cpu"), threads=1)
        1
    """
    if setting != "auto" and not (type(setting) is int and setting in (1, 2)):
        raise ConfigError(f"training.processes: must be one of ['auto', 1, 2], but got {setting!r}")
    if device.type != "cpu":
        if setting == 2:
            raise ConfigError(
                f"training.processes: 2 trains reference models in a forked CPU process, which the "
                f"device {device} cannot use (a CUDA context cannot be forked); use 1 or auto"
            )
        return 1
    if setting != "auto":
        return int(setting)
    return 2 if threads == 1 and _usable_cores() >= 2 else 1


def train_references(
    context: TrialContext,
    defense: DefenseConfig,
    *,
    seed: int,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[TrainedModel]:
    """The trial's K reference models, trained together as ``tuner.trial`` trains one.

    Model k trains on ``roles.reference_training_set(k, seed=seed)`` with
    seed ``seed + k + 1``. They are scored on the attacker's population
    after each epoch only when the defense stops early (nothing else reads
    their validation curves). ``on_epoch_end`` (epoch number) may raise to
    stop early.
    """
    roles, population, utility = context.roles, context.roles.attacker_population, context.utility
    k = context.n_reference_models
    stops_early = defense.early_stopping_patience is not None
    return train_ensemble(
        lambda: build_target_model(context.config, roles, dropout=defense.dropout),
        defense,
        context.recipe,
        [roles.reference_training_set(i, seed=seed) for i in range(k)],
        seeds=[seed + i + 1 for i in range(k)],
        device=context.device,
        validation=(population.X, population.y) if stops_early else None,
        validation_score=(lambda logits, labels: utility.score(labels, logits)) if stops_early else None,
        on_epoch_end=on_epoch_end,
    )


class PendingReferences:
    """Reference models on their way: :meth:`result` waits for them (or trains them here)."""

    def __init__(self, train_here: Callable[[], list[TrainedModel]], beside: Pending | None = None,
                 owner: ReferenceTraining | None = None) -> None:
        self._train_here = train_here
        self._beside = beside
        self._owner = owner

    def abandon(self) -> None:
        """The trial ended without them (pruned, failed): the helper stops at its next epoch."""
        if self._beside is not None:
            self._beside.abandon()

    def result(self) -> list[TrainedModel]:
        if self._beside is not None:
            try:
                return self._beside.result()
            except HelperGone as gone:
                if self._owner is not None:
                    self._owner._lost(gone)
        return self._train_here()


class ReferenceTraining:
    """Where one study's reference models train: in this process, or in a helper beside it.

    Args:
        context: the study's trial context (its roles, recipe and device);
            the helper is a fork of this process made with it.
        processes: 1 (here) or 2 (a helper process, once :meth:`start` forks it).

    Until :meth:`start` is called (the tuner calls it before the first trial)
    everything trains here, so building one costs no process.
    """

    def __init__(self, context: TrialContext, processes: int = 1) -> None:
        if processes not in (1, 2):
            raise ValueError(f"processes must be 1 or 2, but got {processes!r}")
        self.context = context
        self.processes = processes
        self._helper: HelperProcess | None = None
        self._started = False

    @property
    def beside(self) -> bool:
        """True while a helper process trains the reference models."""
        return self._helper is not None and self._helper.alive

    def start(self) -> None:
        """Fork the helper (with 2 processes and reference models to train; once).

        Call it before this process starts threads of its own (see
        :mod:`tuner.helper_process`). A helper that was closed or lost is
        not forked again.
        """
        context = self.context
        if self.processes == 2 and not self._started and context.n_reference_models > 0:
            self._started = True
            self._helper = HelperProcess(
                lambda request: train_references(
                    context, request[0], seed=request[1], on_epoch_end=lambda _epoch: raise_if_abandoned()
                )
            )

    def begin(self, defense: DefenseConfig, *, seed: int) -> PendingReferences:
        """Start training the reference models of one trial; collect them with ``result()``.

        With the helper, they train there from now on; otherwise they train
        here when ``result()`` is called (after the target, as before).
        """
        def here() -> list[TrainedModel]:
            return train_references(self.context, defense, seed=seed)

        if self._helper is not None:
            try:
                return PendingReferences(here, self._helper.submit((defense, seed)), owner=self)
            except HelperGone as gone:
                self._lost(gone)
        return PendingReferences(here)

    def close(self) -> None:
        """End the helper process, if any; later trials train everything here."""
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def _lost(self, gone: HelperGone) -> None:
        print(f"privtune: warning: {gone}; training the reference models in this process from now on",
              file=sys.stderr)
        self.close()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


__all__ = ["PendingReferences", "ReferenceTraining", "resolve_processes", "train_references"]
