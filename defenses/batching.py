"""Mini-batches straight from tensors that already sit on the training device.

Per-record ``Dataset.__getitem__`` calls and ``default_collate`` cost more
than a small MLP's forward pass, so batches here are gathered with one
indexing operation. Non-private training shuffles with a seeded permutation;
private training goes through a ``DataLoader`` (which Opacus turns into its
Poisson-sampling ``DPDataLoader``) over :class:`TensorRows`, whose
``__getitems__`` serves a whole batch of indices at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class TensorRows(Dataset):
    """Rows of ``(X, y)`` tensors, fetched a batch at a time.

    Args:
        X: features, shape ``(n, d)``.
        y: labels, shape ``(n,)``, on the same device as ``X``.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        if len(X) != len(y):
            raise ValueError(
                f"X and y must have the same number of rows, but got {len(X)} and {len(y)}"
            )
        self.X = X
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole batch in one gather (``DataLoader`` calls this when it exists)."""
        # through numpy: a third of the time torch.as_tensor takes on a list
        index = torch.from_numpy(np.array(indices, dtype=np.int64)).to(self.y.device)
        return self.X[index], self.y[index]


def keep_batch(batch: Any) -> Any:
    """Collate function for :class:`TensorRows`: its batches come out collated."""
    return batch


def tensor_loader(
    X: torch.Tensor, y: torch.Tensor, *, batch_size: int, generator: torch.Generator
) -> DataLoader:
    """A ``DataLoader`` of batch-at-a-time gathers, ready for Opacus' Poisson sampling.

    Its order is irrelevant: Opacus keeps only its length (for the sampling
    rate) and its ``generator`` (which then decides batch membership).
    """
    return DataLoader(
        TensorRows(X, y), batch_size=batch_size, generator=generator, collate_fn=keep_batch
    )


def shuffled_batches(
    X: torch.Tensor, y: torch.Tensor, *, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled mini-batches (the last one may be smaller).

    Args:
        X: features on the training device.
        y: labels on the training device.
        batch_size: rows per batch.
        generator: a CPU generator that fixes the order.
    """
    order = torch.randperm(len(y), generator=generator).to(y.device)
    for start in range(0, len(y), batch_size):
        index = order[start : start + batch_size]
        yield X[index], y[index]


def as_device_tensors(
    data: tuple[np.ndarray, np.ndarray], device: torch.device, *, role: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``(X, y)`` and move it to ``device`` as float32 / int64 tensors."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{role} must be a pair (X, y), but got {type(data).__name__}")
    X, y = np.asarray(data[0]), np.asarray(data[1])
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or len(y) == 0:
        raise ValueError(
            f"{role} must hold X of shape (n, d) and y of shape (n,) with n >= 1, "
            f"but got X {X.shape} and y {y.shape}"
        )
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{role} X must be numeric, but got dtype {X.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{role} y must hold integer class labels, but got dtype {y.dtype}")
    X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    y_t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)
    return X_t, y_t


__all__ = ["TensorRows", "as_device_tensors", "keep_batch", "shuffled_batches", "tensor_loader"]
