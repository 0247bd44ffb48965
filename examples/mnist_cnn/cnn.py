"""The user's own model: a small CNN for 28×28 grey-scale digits.

This file stands for code a privtune user already has. The only thing
privtune asks of it is a *builder* with the contract of
``tuner.user_code`` (named in ``config.yaml`` as ``model.builder: "cnn:build_cnn"``)::

    build_cnn(*, input_shape, n_classes, dropout, **options) -> torch.nn.Module

The model is Opacus-friendly: GroupNorm instead of BatchNorm (BatchNorm mixes
the records of a batch, which per-sample clipping cannot allow), and one
``nn.Dropout`` before the classifier head, which is where the searched (and
later recommended) dropout probability goes.
"""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """Two strided convolutions with GroupNorm, then dropout and a linear head."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 8, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=5, stride=2, padding=2),  # 28 -> 14
            nn.GroupNorm(min(4, width), width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1),  # 14 -> 7
            nn.GroupNorm(min(4, 2 * width), 2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 7 -> 3
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width * 3 * 3, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


def build_cnn(*, input_shape: tuple[int, ...], n_classes: int, dropout: float, width: int = 8) -> nn.Module:
    """The builder privtune calls (and the user's own training script calls too)."""
    channels, height, width_px = input_shape
    if (height, width_px) != (28, 28):
        raise ValueError(f"SmallCNN expects 28×28 images, but input_shape is {input_shape}")
    return SmallCNN(in_channels=channels, n_classes=n_classes, width=width, dropout=dropout)
