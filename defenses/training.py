"""The training loop that applies a :class:`DefenseConfig`.

The tuner trains the target model with :func:`train_model` (DP-SGD through
Opacus), and the attacker's reference models with
:func:`defenses.ensemble.train_ensemble`, which trains K models at once and
gives the same models as K calls of this loop (its tests check that), so every
model of a trial is built, regularized, privatized and stopped the same way.
Each defense lives in its own module; this one only wires them together:

* dropout: in the model, applied by the caller's ``build_model`` (the tuner
  passes ``lambda: build_mlp(..., dropout=defense.dropout)``); this loop does
  not touch the architecture;
* weight decay and label smoothing: :mod:`defenses.regularization`;
* DP-SGD: :mod:`defenses.dp_sgd` (Opacus);
* early stopping: :mod:`defenses.early_stopping`.

:func:`predict_logits` (from :mod:`defenses.prediction`) is re-exported here
because every caller of :func:`train_model` needs it next.

Reproducibility: ``torch.manual_seed(seed)`` runs before ``build_model`` (the
initial weights, dropout masks), and two seeds derived from ``seed`` drive a
local generator for the batch order / Poisson sampling and one for the DP
noise. The same seed on the same machine gives identical logits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from defenses.batching import as_device_tensors, shuffled_batches, tensor_loader
from defenses.config import DefenseConfig, TrainingRecipe
from defenses.dp_sgd import PrivacyLedger, privatize, release_model
from defenses.early_stopping import EarlyStopping
from defenses.prediction import PREDICT_BATCH_SIZE, logits_in_batches, predict_logits
from defenses.regularization import build_criterion, build_optimizer

_INPUT_GRAD_WARNING = (
    ".*Full backward hook is firing when gradients are computed with respect to module outputs.*"
)

ValidationScore = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class EpochLog:
    """What one epoch produced.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean training loss over the epoch's records (with the
            run's label smoothing; under DP, before clipping and noise).
        validation_utility: the validation score after the epoch, when
            validation data was given.
        epsilon: ε spent so far (DP runs with ``track_epsilon`` only). The
            run's last epoch (the planned last one, or the one early stopping
            ends on) holds the accountant's own ε, the run's
            :attr:`TrainedModel.epsilon`. Earlier epochs hold points of the ε
            curve (:meth:`defenses.dp_sgd.PrivacyLedger.curve_epsilon`): with
            ``rdp`` exact too; with ``prv`` PRV's upper bound at a coarser ε
            error, about a quarter of an epoch's ε above the accountant's
            number for that epoch, so the curve rises into the exact final
            value. A run cut short from outside (``on_epoch_end`` raising,
            e.g. pruning) ends on a curve point.
    """

    epoch: int
    train_loss: float
    validation_utility: float | None
    epsilon: float | None


@dataclass
class TrainedModel:
    """A trained model and how it was trained.

    Attributes:
        model: the plain module (unwrapped from Opacus), in eval mode, on the
            training device, holding the weights of ``best_epoch``.
        history: one :class:`EpochLog` per epoch run.
        epochs_run: how many epochs were trained.
        best_epoch: the epoch whose weights were kept (``epochs_run`` without
            early stopping).
        epsilon: ε spent over all epochs run (DP with ``track_epsilon`` only).
        delta: δ of the guarantee (DP only).
        noise_multiplier: σ actually used (DP only; found by Opacus when a
            target ε was given).
        sample_rate: Poisson sampling rate q of each noisy step (DP only).
        steps: noisy optimizer steps taken (DP only); with ``sample_rate`` and
            ``noise_multiplier`` this is all an accountant needs.
    """

    model: nn.Module
    history: list[EpochLog]
    epochs_run: int
    best_epoch: int
    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    sample_rate: float | None = None
    steps: int | None = None


def train_model(
    build_model: Callable[[], nn.Module],
    defense: DefenseConfig,
    recipe: TrainingRecipe,
    train: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    device: torch.device,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    validation_score: ValidationScore | None = None,
    on_epoch_end: Callable[[EpochLog], None] | None = None,
    track_epsilon: bool = True,
) -> TrainedModel:
    """Train a model with the given defenses and recipe.

    Args:
        build_model: returns a fresh model; called once, after seeding, so the
            initial weights are reproducible. It applies ``defense.dropout``.
        defense: the defenses to apply.
        recipe: epochs, batch size, learning rate, optimizer.
        train: ``X`` (float, ``(n, d)``) and ``y`` (integer labels, ``(n,)``).
        seed: seeds everything random in the run.
        device: where the data, model and noise live.
        validation: ``(X, y)`` scored after every epoch; required, with
            ``validation_score``, for early stopping.
        validation_score: ``(logits, labels) -> utility``, higher is better;
            given exactly when ``validation`` is.
        on_epoch_end: called with each :class:`EpochLog`; whatever it raises
            (e.g. ``optuna.TrialPruned``) propagates.
        track_epsilon: query ε after every epoch (a point of the ε curve,
            exact on the last epoch; see :class:`EpochLog`). The query has a
            cost (see :mod:`defenses.epsilon`); models whose ε nobody reads
            (reference models) pass False and get ``epsilon=None``.

    Returns:
        The trained model; with early stopping, the best epoch's weights (also
        when the last epoch is reached without stopping).

    Raises:
        ValueError: the data has the wrong shape or type, or validation data /
            score are missing or unpaired.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from defenses import DefenseConfig, TrainingRecipe, build_mlp
        >>> X, y = load_iris(return_X_y=True)
        >>> recipe = TrainingRecipe(epochs=3)
        >>> trained = train_model(lambda: build_mlp(4, 3), DefenseConfig(), recipe,
        ...                       (X, y), seed=0, device=torch.device("cpu"))
        >>> trained.epochs_run, trained.best_epoch, trained.epsilon
        (3, 3, None)
    """
    _check_validation_arguments(defense, validation, validation_score)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, but got seed={seed!r}")
    X, y = as_device_tensors(train, device, role="train")
    val = None
    if validation is not None:  # features on the device, labels as given to the score
        val = (
            as_device_tensors(validation, device, role="validation")[0],
            np.asarray(validation[1]),
        )
    run = _start_run(build_model, defense, recipe, X, y, seed=int(seed), device=device)
    model, ledger = run.model, run.ledger

    patience = defense.early_stopping_patience
    stopper = EarlyStopping(patience) if patience is not None else None
    history: list[EpochLog] = []
    try:
        for epoch in range(1, recipe.epochs + 1):
            train_loss = run.epoch()
            utility = None
            if val is not None and validation_score is not None:
                logits = logits_in_batches(
                    model, val[0], device=device, batch_size=PREDICT_BATCH_SIZE
                )
                utility = float(validation_score(logits, val[1]))
            stop = (
                stopper.step(utility, model)
                if stopper is not None and utility is not None
                else False
            )
            epsilon = None
            if ledger is not None and track_epsilon:
                last = stop or epoch == recipe.epochs
                epsilon = ledger.epsilon() if last else ledger.curve_epsilon()
            log = EpochLog(
                epoch=epoch, train_loss=train_loss, validation_utility=utility, epsilon=epsilon
            )
            history.append(log)
            if on_epoch_end is not None:
                on_epoch_end(log)
            if stop:
                break
    finally:
        model = release_model(run.net)

    best_epoch = len(history)
    if stopper is not None and stopper.has_best_state:
        stopper.restore(model)
        best_epoch = stopper.best_epoch
    model.zero_grad(set_to_none=True)
    model.eval()
    return TrainedModel(
        model=model,
        history=history,
        epochs_run=len(history),
        best_epoch=best_epoch,
        epsilon=history[-1].epsilon if ledger is not None and track_epsilon else None,
        delta=ledger.delta if ledger is not None else None,
        noise_multiplier=ledger.noise_multiplier if ledger is not None else None,
        sample_rate=ledger.sample_rate if ledger is not None else None,
        steps=ledger.steps if ledger is not None else None,
    )


@dataclass
class _Run:
    """A training setup ready for its epochs (plain, or privatized by Opacus)."""

    model: nn.Module  # the plain module; shares its parameters with ``net``
    net: nn.Module  # what is trained: ``model`` or its Opacus wrapper
    optimizer: torch.optim.Optimizer
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]  # one epoch's batches
    ledger: PrivacyLedger | None

    def epoch(self) -> float:
        """Train one pass over the data; the record-weighted mean loss."""
        with warnings.catch_warnings():
            # Opacus' backward hooks fire on a batch (the data) that needs
            # no gradient; torch remarks on it, harmlessly, in every DP run.
            warnings.filterwarnings("ignore", message=_INPUT_GRAD_WARNING)
            return _train_one_epoch(self.net, self.optimizer, self.criterion, self.batches())


def _start_run(
    build_model: Callable[[], nn.Module],
    defense: DefenseConfig,
    recipe: TrainingRecipe,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int,
    device: torch.device,
    grad_sample_mode: str | None = None,
) -> _Run:
    """Seed, build, and (for DP) privatize: what :func:`train_model` does before epoch 1.

    ``X`` and ``y`` come from :func:`defenses.batching.as_device_tensors`;
    ``grad_sample_mode`` overrides privtune's choice (benchmarks compare modes).
    """
    torch.manual_seed(seed)
    batch_seed, noise_seed = (
        int(s) for s in np.random.SeedSequence(seed).generate_state(2, np.uint64)
    )
    batch_generator = torch.Generator().manual_seed(batch_seed)
    model = build_model().to(device)
    optimizer = build_optimizer(model, defense, recipe)
    criterion = build_criterion(defense)
    if defense.dp is None:
        batches = partial(
            shuffled_batches, X, y, batch_size=recipe.batch_size, generator=batch_generator
        )
        return _Run(model, model, optimizer, criterion, batches, None)
    loader = tensor_loader(X, y, batch_size=recipe.batch_size, generator=batch_generator)
    net, optimizer, criterion, loader, ledger = privatize(
        model,
        optimizer,
        loader,
        criterion,
        defense.dp,
        epochs=recipe.epochs,
        n_train=len(y),
        noise_seed=noise_seed,
        grad_sample_mode=grad_sample_mode,
    )
    return _Run(model, net, optimizer, criterion, loader.__iter__, ledger)


def _train_one_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """One pass; returns the record-weighted mean loss (NaN if every batch was empty)."""
    net.train()
    total: torch.Tensor | float = 0.0
    count = 0
    for xb, yb in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(net(xb), yb)
        loss.backward()
        optimizer.step()
        size = int(yb.shape[0])
        if size:  # Poisson sampling can draw an empty batch: a noise-only step
            total = total + loss.detach() * size
            count += size
    return float(total) / count if count else float("nan")


def _check_validation_arguments(
    defense: DefenseConfig,
    validation: tuple[np.ndarray, np.ndarray] | None,
    validation_score: ValidationScore | None,
) -> None:
    if (validation is None) != (validation_score is None):
        raise ValueError(
            "validation and validation_score must be given together, but got "
            f"validation={'set' if validation is not None else None}, "
            f"validation_score={'set' if validation_score is not None else None}"
        )
    if defense.early_stopping_patience is not None and validation is None:
        raise ValueError(
            f"early_stopping_patience={defense.early_stopping_patience} needs validation data "
            "and a validation_score to decide when to stop"
        )


__all__ = ["EpochLog", "TrainedModel", "predict_logits", "train_model"]
