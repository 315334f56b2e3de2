"""Vectorised operations over a flat array cut into per-prompt segments by ``offsets``.

All of a pool's rewards live in one flat float64 array, grouped by prompt and ordered by
sample index inside each group; ``offsets`` (length P+1) marks where each prompt starts. These
helpers replace per-prompt Python loops with a few passes over the flat array.
"""

from __future__ import annotations

import numpy as np


def segment_ids(offsets: np.ndarray) -> np.ndarray:
    """The segment (prompt) index of every element, as int32 (int64 past 2**31 prompts)."""
    counts = np.diff(offsets)
    dtype = np.int32 if len(counts) < 2**31 else np.int64
    return np.repeat(np.arange(len(counts), dtype=dtype), counts)


def segment_reduce(
    ufunc: np.ufunc, values: np.ndarray, offsets: np.ndarray, empty: float = np.nan
) -> np.ndarray:
    """``ufunc.reduceat`` per segment, with ``empty`` for segments that hold no element.

    ``np.ufunc.reduceat`` returns ``values[start]`` for an empty segment; this skips them.
    """
    counts = np.diff(offsets)
    nonempty = counts > 0
    if np.issubdtype(values.dtype, np.integer):  # keep integer keys exact; no NaN for ints
        out = np.zeros(len(counts), dtype=values.dtype)
    else:
        out = np.full(len(counts), empty, dtype=np.float64)
    if len(values):
        out[nonempty] = ufunc.reduceat(values, offsets[:-1][nonempty])
    return out


def first_true(mask: np.ndarray, seg: np.ndarray, n_segments: int) -> np.ndarray:
    """The flat index of the first True element of each segment, or -1 where there is none."""
    idx = np.flatnonzero(mask)
    out = np.full(n_segments, -1, dtype=np.int64)
    if len(idx):
        s = seg[idx]
        keep = np.empty(len(idx), dtype=bool)
        keep[0] = True
        np.not_equal(s[1:], s[:-1], out=keep[1:])
        out[s[keep]] = idx[keep]
    return out


def argbest(
    values: np.ndarray, offsets: np.ndarray, seg: np.ndarray, *, largest: bool = False
) -> np.ndarray:
    """Per segment, the flat index of the smallest (or largest) value; ties go to the first.

    Elements are ordered by sample index inside a segment, so "first" is the lower sample index.
    NaN never wins; a segment with no comparable value gets -1.
    """
    ufunc = np.fmax if largest else np.fmin
    best = segment_reduce(ufunc, values, offsets)
    return first_true(values == best[seg], seg, len(offsets) - 1)


def segment_sum(
    values: np.ndarray,
    offsets: np.ndarray,
    center: np.ndarray | None = None,
    power: int = 1,
    block_values: int = 1 << 20,
) -> np.ndarray:
    """Per segment, the sum of ``values`` (or of ``(values - center[segment]) ** power``), each
    segment summed over exactly its own values in element order.

    Segments of one size form the rows of a matrix, and numpy sums each row by pairwise
    summation over that row alone, whose tree depends only on the row's length: a segment's sum
    depends on its own values — not on the other segments, their sizes, or how the pool was
    split — which keeps every tie-break of pair selection a function of the prompt alone.
    Segments are processed in blocks of about ``block_values`` values.
    """
    counts = np.diff(offsets)
    out = np.zeros(len(counts))
    if not len(values):
        return out
    filled = counts[counts > 0]
    uniform = len(filled) == len(counts) and filled.min() == filled.max()
    sizes = filled[:1] if uniform else np.unique(filled)
    for size in sizes.tolist():
        segs = np.arange(len(counts)) if uniform else np.flatnonzero(counts == size)
        step = max(1, block_values // size)
        cols = np.arange(size)
        # blocks go through reused buffers: fresh temporaries of a block cost page faults
        buf = np.empty((min(step, len(segs)), size))
        cube = np.empty_like(buf) if center is not None and power == 3 else None
        for i in range(0, len(segs), step):
            block = segs[i : i + step]
            x = buf[: len(block)]
            if uniform:
                m = values[offsets[block[0]] : offsets[block[-1] + 1]].reshape(-1, size)
            else:
                m = np.take(values, offsets[block][:, None] + cols, out=x)
            if center is not None:
                m = np.subtract(m, center[block][:, None], out=x)
                if power == 3:
                    m = np.multiply(np.multiply(x, x, out=cube[: len(block)]), x, out=x)
                else:
                    m = np.multiply(x, x, out=x) if power == 2 else np.power(x, power, out=x)
            out[block] = m.sum(axis=1)
    return out
