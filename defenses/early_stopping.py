"""Early stopping on a validation score, keeping the best epoch's weights.

Stopping before the model has memorized its training set is the cheapest
membership-inference defense there is, and production models use it anyway;
privtune treats it as a knob (the patience) like the others. The class works
in any training loop, not only in :func:`defenses.training.train_model`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MODES = ("max", "min")


class EarlyStopping:
    """Say when a monitored value has stopped improving, and remember the best weights.

    Call :meth:`step` once per epoch with the validation value (and the model,
    to snapshot its weights when the value improves). It returns ``True`` once
    ``patience`` epochs in a row have not improved on the best value; then
    :meth:`restore` loads the best epoch's weights back into the model.

    A value improves when it beats the best so far by more than ``min_delta``
    (ties keep the earlier epoch). NaN never improves.

    Args:
        patience: how many non-improving epochs to allow (at least 1).
        mode: ``"max"`` (default; higher is better, e.g. accuracy) or ``"min"``.
        min_delta: the margin an improvement must exceed (default 0).

    Attributes:
        best_value: the best value seen, or ``None`` before the first improvement.
        best_epoch: the 1-based count of :meth:`step` calls at the best value (0 before).
        epochs_seen: how many times :meth:`step` was called.
        bad_epochs: non-improving epochs since the best one.

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(2, 2)
        >>> stopper = EarlyStopping(patience=2)
        >>> for accuracy in [0.50, 0.70, 0.65, 0.60, 0.80]:
        ...     # ... train one epoch, then measure validation accuracy ...
        ...     if stopper.step(accuracy, model):
        ...         break
        >>> stopper.best_epoch, stopper.best_value, stopper.epochs_seen
        (2, 0.7, 4)
        >>> stopper.restore(model)  # the weights of epoch 2
    """

    def __init__(self, patience: int, *, mode: str = "max", min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, but got patience={patience!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, but got mode={mode!r}")
        if not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, but got min_delta={min_delta!r}")
        self.patience = patience
        self.mode = mode
        self.min_delta = float(min_delta)
        self.best_value: float | None = None
        self.best_epoch = 0
        self.epochs_seen = 0
        self.bad_epochs = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, mode={self.mode!r}, "
            f"best_value={self.best_value!r}, best_epoch={self.best_epoch}, "
            f"bad_epochs={self.bad_epochs})"
        )

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row have not improved."""
        return self.bad_epochs >= self.patience

    @property
    def has_best_state(self) -> bool:
        """True when a snapshot of the best epoch's weights is held."""
        return self._best_state is not None

    def step(self, value: float, model: nn.Module | None = None) -> bool:
        """Record one epoch's value; return True when training should stop.

        Args:
            value: the monitored value of the epoch just finished.
            model: when given and ``value`` improves, its ``state_dict`` is
                copied so :meth:`restore` can bring it back.
        """
        self.epochs_seen += 1
        value = float(value)
        if self._improves(value):
            self.best_value = value
            self.best_epoch = self.epochs_seen
            self.bad_epochs = 0
            if model is not None:
                self._best_state = _copy_state(model)
        else:
            self.bad_epochs += 1
        return self.should_stop

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model``.

        Raises:
            RuntimeError: no snapshot was taken (no model was passed to
                :meth:`step` at an improving value).
        """
        if self._best_state is None:
            raise RuntimeError(
                "EarlyStopping has no weights to restore: pass the model to step() "
                "so it can keep the best epoch's state_dict"
            )
        model.load_state_dict(self._best_state)

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "max":
            return value > self.best_value + self.min_delta
        return value < self.best_value - self.min_delta


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the state dict, on the model's own device."""
    return {key: tensor.detach().clone() for key, tensor in model.state_dict().items()}


__all__ = ["EarlyStopping", "MODES"]
