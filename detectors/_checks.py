"""Input validation shared by the statistics modules."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def finite_sample(values: ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a float64 1-D array; raise ValueError if empty or not all finite."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr
