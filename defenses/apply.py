"""Apply an exported recommendation in the user's own training loop.

privtune tunes the defense; the user's code trains the production model.
:func:`prepare_training` is the bridge: it takes the loaded recommendation
and the user's model, optimizer and data loader and returns them ready to
train with that defense, so the loop itself stays the user's:

* **DP-SGD** (when the recommendation has it): Opacus is set up through
  :func:`defenses.dp_sgd.privatize` with the exported noise multiplier σ (or
  target ε) and clipping bound C, Poisson sampling and the exported
  accountant; δ is the exported one, or 1/(10·n) for the user's n records.
  The returned model, optimizer, criterion and data loader are Opacus' (call
  the returned criterion: ghost clipping needs it).
* **Weight decay**: set on every parameter group of the user's optimizer (as
  the coupled L2 penalty of ``torch.optim.SGD``/``Adam`` that privtune tuned;
  ``AdamW`` would apply it decoupled).
* **Dropout**: the recommended probability is set on every dropout layer of
  the model (``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``), the same
  rule the tuner's builder contract follows. A recommendation with dropout
  on a model without dropout layers is refused: add one (e.g. before the
  classifier head) or build the model with the recommended dropout.
* **Label smoothing**: in the returned ``criterion`` (cross-entropy).
* **Early stopping**: ``early_stopping`` is an :class:`EarlyStopping` with the
  recommended patience (``None`` when the recommendation trains all epochs);
  :meth:`PreparedTraining.should_stop` and :meth:`PreparedTraining.release`
  wrap it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from defenses import DefenseConfig, DPSettings, TrainingRecipe
    >>> from defenses.recommendation import LoadedRecommendation
    >>> rec = LoadedRecommendation(
    ...     defense=DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0),
    ...                           weight_decay=1e-4, label_smoothing=0.1,
    ...                           early_stopping_patience=2),
    ...     recipe=TrainingRecipe(epochs=2), document={})
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 2))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    >>> loader = DataLoader(data, batch_size=16)
    >>> ready = prepare_training(rec, model, optimizer, loader, noise_seed=0)
    >>> for epoch in range(ready.epochs):
    ...     for xb, yb in ready.data_loader:
    ...         ready.optimizer.zero_grad()
    ...         ready.criterion(ready.model(xb), yb).backward()
    ...         ready.optimizer.step()
    ...     if ready.should_stop(validation_accuracy := 0.5):
    ...         break
    >>> trained = ready.release()   # the plain nn.Module, best epoch's weights
    >>> ready.epsilon() > 0, ready.optimizer.param_groups[0]["weight_decay"]
    (True, 0.0001)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from opacus.grad_sample import AbstractGradSampleModule
from torch import nn
from torch.utils.data import DataLoader

from defenses.config import DefenseConfig
from defenses.dp_sgd import PrivacyLedger, privatize, release_model
from defenses.early_stopping import EarlyStopping
from defenses.recommendation import LoadedRecommendation
from defenses.regularization import build_criterion

DROPOUT_LAYERS: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd,)


@dataclass
class PreparedTraining:
    """The user's training objects with the recommended defense applied.

    Attributes:
        model: the model to train (an Opacus ``GradSampleModule`` under DP).
        optimizer: the optimizer to step (Opacus' ``DPOptimizer`` under DP).
        data_loader: the loader to iterate (Opacus' Poisson-sampling loader
            under DP: batch sizes vary around the expected size).
        criterion: the loss to call, with the recommended label smoothing.
        early_stopping: the recommended early stopping, or ``None``.
        privacy: σ, C, δ, q and the accountant under DP, else ``None``.
        epochs: the recommendation's maximum number of epochs (under DP with
            a target ε, σ was calibrated for exactly these).
        defense: the applied defense.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data_loader: DataLoader
    criterion: Any
    early_stopping: EarlyStopping | None
    privacy: PrivacyLedger | None
    epochs: int
    defense: DefenseConfig

    def epsilon(self) -> float | None:
        """ε spent so far (``None`` without DP)."""
        return None if self.privacy is None else self.privacy.epsilon()

    def should_stop(self, validation_value: float) -> bool:
        """Record one epoch's validation value (higher is better); True when the loop should stop.

        Always False without early stopping. The best epoch's weights are
        kept for :meth:`release`.
        """
        if self.early_stopping is None:
            return False
        return self.early_stopping.step(validation_value, _unwrapped(self.model))

    def release(self) -> nn.Module:
        """The trained plain module: Opacus removed, the best epoch's weights under early stopping."""
        plain = release_model(self.model)
        if self.early_stopping is not None and self.early_stopping.has_best_state:
            self.early_stopping.restore(plain)
        return plain


def prepare_training(
    recommendation: LoadedRecommendation,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader,
    *,
    epochs: int | None = None,
    noise_seed: int | None = None,
) -> PreparedTraining:
    """Apply ``recommendation``'s defense to the user's model, optimizer and loader.

    Args:
        recommendation: from :func:`defenses.load_recommendation`.
        model: the user's plain model (not yet wrapped by Opacus).
        optimizer: the user's optimizer over ``model``'s parameters.
        data_loader: the user's training loader (map-style dataset with a
            length; its ``batch_size`` becomes the expected batch size under
            DP, its ``generator``, if any, drives the Poisson sampling).
        epochs: the epochs the user's loop will run (default: the
            recommendation's); with a target ε, σ is calibrated to them.
        noise_seed: seeds the DP noise (reproducible runs); ``None`` uses
            torch's global generator.

    Returns:
        A :class:`PreparedTraining`; iterate its ``data_loader``, call its
        ``model``, ``criterion`` and ``optimizer``.

    Raises:
        ValueError: the recommendation sets dropout but the model has no
            dropout layer, the optimizer cannot take weight decay, or the
            loader's dataset has no length.
        IncompatibleModelError: DP is recommended and Opacus cannot train
            the model (e.g. it has BatchNorm).
    """
    defense = recommendation.defense
    epochs = recommendation.recipe.epochs if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, but got epochs={epochs!r}")
    set_dropout(model, defense.dropout)
    set_weight_decay(optimizer, defense.weight_decay)
    criterion = build_criterion(defense)
    stopper = None
    if defense.early_stopping_patience is not None:
        stopper = EarlyStopping(defense.early_stopping_patience)
    if defense.dp is None:
        return PreparedTraining(model, optimizer, data_loader, criterion, stopper, None, epochs, defense)
    try:
        n_train = len(data_loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            "DP-SGD needs a map-style dataset with a length (Poisson sampling draws from all n records), "
            f"but the data loader's dataset is a {type(data_loader.dataset).__name__} without one"
        ) from None
    private = privatize(
        model, optimizer, data_loader, criterion, defense.dp, epochs=epochs, n_train=n_train, noise_seed=noise_seed
    )
    return PreparedTraining(
        private.model, private.optimizer, private.data_loader, private.criterion, stopper, private.ledger,
        epochs, defense,
    )


def set_dropout(model: nn.Module, p: float) -> int:
    """Set ``p`` on every dropout layer of ``model``; return how many there are.

    Raises:
        ValueError: ``p > 0`` and the model has no dropout layer.
    """
    layers = [m for m in model.modules() if isinstance(m, DROPOUT_LAYERS)]
    if p > 0 and not layers:
        raise ValueError(
            f"the recommendation sets dropout={p:g}, but the model has no dropout layer "
            "(nn.Dropout, Dropout1d/2d/3d, AlphaDropout); add one, e.g. before the classifier head"
        )
    for layer in layers:
        layer.p = float(p)
    return len(layers)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Set ``weight_decay`` on every parameter group of ``optimizer``.

    Raises:
        ValueError: ``weight_decay > 0`` and the optimizer has no weight-decay setting.
    """
    if weight_decay > 0 and "weight_decay" not in optimizer.defaults:
        raise ValueError(
            f"the recommendation sets weight_decay={weight_decay:g}, but {type(optimizer).__name__} "
            "has no weight_decay setting; use torch.optim.SGD or Adam, as privtune's tuning did"
        )
    if "weight_decay" in optimizer.defaults:
        for group in optimizer.param_groups:
            group["weight_decay"] = float(weight_decay)


def _unwrapped(model: nn.Module) -> nn.Module:
    """The user's module inside an Opacus wrapper, left wrapped (its state_dict keys are the user's)."""
    return model._module if isinstance(model, AbstractGradSampleModule) else model


__all__ = ["DROPOUT_LAYERS", "PreparedTraining", "prepare_training", "set_dropout", "set_weight_decay"]
