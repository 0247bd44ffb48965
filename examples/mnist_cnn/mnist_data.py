"""The user's own data loader: 5,000 MNIST digits from a gzipped CSV.

Named in ``config.yaml`` as ``data.loader: "mnist_data:load"``. It returns
``(X, y, X_test, y_test)``: images of shape ``(n, 1, 28, 28)`` scaled to
[0, 1] and integer labels, with a fixed, stratified test split of the user's
own. privtune uses the test split as its test role (so ``data.roles.test`` is
0) and splits the rest into its data roles; ``train_with_recommendation.py``
calls the same function, so both see the same test records.

The file has 784 pixel columns (0–255) then the label, and no header.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

# ../shared/data/ relative to the project root (this file is examples/mnist_cnn/mnist_data.py)
DEFAULT_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist5k" / "mnist_5k.csv.gz"


def load(path: str | None = None, test_per_class: int = 100, seed: int = 0):
    """(X, y, X_test, y_test): the digits, with ``test_per_class`` test images per class.

    ``path`` defaults to ``$MNIST5K_PATH`` or the project's ``../shared/data`` copy.
    """
    source = Path(path or os.environ.get("MNIST5K_PATH") or DEFAULT_PATH).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"MNIST 5k file not found: {source}; set MNIST5K_PATH or pass path")
    with gzip.open(source, "rt") as handle:
        raw = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    images = (raw[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    labels = raw[:, 784].astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), size=test_per_class, replace=False) for c in np.unique(labels)]
    )
    train = np.setdiff1d(np.arange(len(labels)), test)
    return images[train], labels[train], images[test], labels[test]
