"""Shared data for the defenses tests: scikit-learn's digits, scaled to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: X float32 (n, 64) in [0, 1], y int64."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)
