"""Arrow arrays as numpy arrays without pyarrow's pandas bridge.

``pa.Array.to_numpy`` (and ``np.asarray`` on an Arrow array) goes through pyarrow's pandas
conversion, which imports pandas — half a second of every ``sweetspot pair`` run for nothing.
Numeric and boolean arrays are read from their buffers here instead (zero-copy for numbers).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_DTYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float16(): np.float16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def to_numpy(arr: pa.Array | pa.ChunkedArray, dtype=None) -> np.ndarray:
    """A numpy array of a numeric or boolean Arrow array without nulls (``dtype``: convert)."""
    if isinstance(arr, pa.ChunkedArray):
        parts = [to_numpy(c, dtype) for c in arr.chunks]
        out = np.concatenate(parts) if parts else np.zeros(0, dtype or np.float64)
        return out
    if arr.null_count:
        raise ValueError(f"cannot read an array with {arr.null_count} nulls as numpy")
    t = arr.type
    n, off = len(arr), arr.offset
    if pa.types.is_boolean(t):
        buf = arr.buffers()[1]
        if n == 0 or buf is None:
            out = np.zeros(n, dtype=bool)
        else:
            bits = np.frombuffer(buf, dtype=np.uint8)
            out = np.unpackbits(bits, bitorder="little", count=off + n)[off:].astype(bool)
    elif t in _DTYPES:
        buf = arr.buffers()[1]
        out = (
            np.zeros(0, _DTYPES[t])
            if n == 0 or buf is None
            else np.frombuffer(buf, dtype=_DTYPES[t], count=off + n)[off:]
        )
    else:
        raise TypeError(f"not a numeric or boolean array: {t}")
    return out if dtype is None else out.astype(dtype, copy=False)
