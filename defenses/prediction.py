"""Model outputs as the attacks and metrics consume them: float64 logits in numpy.

Everything in ``objectives`` works on arrays, never on models; this is where a
trained model becomes those arrays, the same way for the target, the
reference models and validation during training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

PREDICT_BATCH_SIZE = 8192


def predict_logits(
    model: nn.Module, X: np.ndarray, *, device: torch.device, batch_size: int = PREDICT_BATCH_SIZE
) -> np.ndarray:
    """The model's logits for ``X`` as float64, shape ``(n, n_classes)``.

    Runs in eval mode (dropout off) without gradients, ``batch_size`` rows at
    a time; the model's train/eval mode is restored afterwards. The model must
    already be on ``device``.

    Example:
        >>> from defenses.models import build_mlp
        >>> predict_logits(build_mlp(4, 3), np.zeros((5, 4)), device=torch.device("cpu")).shape
        (5, 3)
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n, d), but got shape {X.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, but got batch_size={batch_size!r}")
    return logits_in_batches(
        model,
        torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
        device=device,
        batch_size=batch_size,
    )


def logits_in_batches(
    model: nn.Module, X: torch.Tensor, *, device: torch.device, batch_size: int
) -> np.ndarray:
    """:func:`predict_logits` for features already in a tensor (validation during training)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                model(X[start : start + batch_size].to(device)).double().cpu().numpy()
                for start in range(0, max(len(X), 1), batch_size)
            ]
    finally:
        model.train(was_training)
    return np.concatenate(chunks)


__all__ = ["PREDICT_BATCH_SIZE", "logits_in_batches", "predict_logits"]
