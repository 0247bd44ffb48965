"""The regularization defenses that live in the optimizer and the loss.

Weight decay is the optimizer's L2 penalty and label smoothing is an argument
of the cross-entropy loss; both shrink how confidently the model fits its
training records, which is what loss- and likelihood-based membership
inference feeds on. (Dropout lives in the model, see
:func:`defenses.models.build_mlp`; early stopping in
:mod:`defenses.early_stopping`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from defenses.config import DefenseConfig, TrainingRecipe

SGD_MOMENTUM = 0.9

_OptimizerFactory = Callable[[Iterable[nn.Parameter], float, float], torch.optim.Optimizer]


def _sgd(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)


def _adam(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # Adam's weight_decay adds the L2 term to the gradient (coupled), the same
    # penalty SGD applies; AdamW would decouple it and change its meaning.
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


OPTIMIZER_FACTORIES: dict[str, _OptimizerFactory] = {"sgd": _sgd, "adam": _adam}


def build_optimizer(
    model: nn.Module, defense: DefenseConfig, recipe: TrainingRecipe
) -> torch.optim.Optimizer:
    """The recipe's optimizer over the model's trainable parameters, with weight decay.

    Args:
        model: the (plain, not yet privatized) model.
        defense: supplies ``weight_decay`` (0 = off).
        recipe: supplies ``optimizer`` (``"sgd"`` with momentum 0.9, or
            ``"adam"``) and ``learning_rate``.

    Raises:
        ValueError: the optimizer name is unknown; the message lists the known ones.

    Example:
        >>> from defenses.models import build_mlp
        >>> defense = DefenseConfig(weight_decay=1e-3)
        >>> opt = build_optimizer(build_mlp(4, 2), defense, TrainingRecipe())
        >>> type(opt).__name__, opt.defaults["weight_decay"], opt.defaults["momentum"]
        ('SGD', 0.001, 0.9)
    """
    try:
        factory = OPTIMIZER_FACTORIES[recipe.optimizer]
    except KeyError:
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZER_FACTORIES)}, but got {recipe.optimizer!r}"
        ) from None
    params = [p for p in model.parameters() if p.requires_grad]
    return factory(params, recipe.learning_rate, defense.weight_decay)


def build_criterion(defense: DefenseConfig) -> nn.CrossEntropyLoss:
    """Cross-entropy with the defense's label smoothing (0 = plain cross-entropy).

    With smoothing s over K classes the target is ``(1 - s)·onehot + s/K``, so
    a perfectly confident prediction is penalized rather than rewarded.

    Example:
        >>> build_criterion(DefenseConfig(label_smoothing=0.1)).label_smoothing
        0.1
    """
    return nn.CrossEntropyLoss(label_smoothing=defense.label_smoothing)


__all__ = ["OPTIMIZER_FACTORIES", "SGD_MOMENTUM", "build_criterion", "build_optimizer"]
