"""The model privtune trains: a plain multi-layer perceptron.

The MLP is built only from ``Linear``, ``ReLU`` and ``Dropout`` so that Opacus
accepts it as is (no BatchNorm, no buffers) and can clip it with ghost
clipping, the fastest of its per-sample gradient modes. The tuner, the
attacker's reference models and the user's own loop all build the target with
:func:`build_mlp`, so "knows the recipe" means exactly the same architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def build_mlp(
    n_features: int,
    n_classes: int,
    *,
    hidden_sizes: Sequence[int] = (128,),
    dropout: float = 0.0,
) -> nn.Module:
    """Build ``Linear → ReLU → Dropout`` blocks followed by a ``Linear`` head.

    A ``Dropout`` layer follows every hidden layer even when ``dropout`` is 0
    (it is then the identity): the layer indices, and so the ``state_dict``
    keys, do not depend on the dropout setting, which lets weights trained with
    one setting load into a model built with another.

    Args:
        n_features: width of the input.
        n_classes: number of output logits (at least 2).
        hidden_sizes: widths of the hidden layers; empty gives a linear model.
        dropout: dropout probability after each hidden layer, in [0, 1). This
            is where :attr:`DefenseConfig.dropout` takes effect.

    Returns:
        An ``nn.Sequential`` producing logits of shape ``(batch, n_classes)``.

    Raises:
        ValueError: an argument is out of range; the message names it.

    Example:
        >>> model = build_mlp(64, 10, hidden_sizes=(32,), dropout=0.1)
        >>> model
        Sequential(
          (0): Linear(in_features=64, out_features=32, bias=True)
          (1): ReLU()
          (2): Dropout(p=0.1, inplace=False)
          (3): Linear(in_features=32, out_features=10, bias=True)
        )
    """
    _require_int("n_features", n_features, low=1)
    _require_int("n_classes", n_classes, low=2)
    hidden_sizes = tuple(hidden_sizes)
    for i, width in enumerate(hidden_sizes):
        _require_int(f"hidden_sizes[{i}]", width, low=1)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), but got dropout={dropout!r}")

    layers: list[nn.Module] = []
    width_in = n_features
    for width in hidden_sizes:
        layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(float(dropout))]
        width_in = width
    layers.append(nn.Linear(width_in, n_classes))
    return nn.Sequential(*layers)


def _require_int(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, but got {name}={value!r}")


__all__ = ["build_mlp"]
