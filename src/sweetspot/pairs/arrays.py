"""Arrow arrays as numpy arrays."""

from __future__ import annotations

import numpy as np


def to_numpy(arr, dtype=None) -> np.ndarray:
    """A numpy array of a numeric or boolean Arrow (chunked) array without nulls."""
    if arr.null_count:
        raise ValueError(f"cannot read an array with {arr.null_count} nulls as numpy")
    return np.asarray(arr, dtype=dtype)
