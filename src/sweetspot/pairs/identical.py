"""The identical-text rule (SPEC §2): chosen and rejected must differ after whitespace
normalisation (runs of whitespace as one space, ends trimmed: ``" ".join(s.split())``).

Normalising every pair's two texts costs seconds at the paper's scale. Two texts equal after
normalisation have the same non-whitespace characters in the same order, so the same ASCII
bytes that are not whitespace (every whitespace character is either ASCII or made of bytes
>= 0x80 only). A fingerprint of those bytes — their count and sum — is one numpy pass over the
texts; only pairs whose fingerprints agree are normalised in full. The
result is exactly the full rule's; the fingerprint only saves work.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.pairs.arrays import to_numpy

_BLOCK_BYTES = 1 << 18  # its int64 temporary (2 MB) stays in the heap: no page faults
_WEIGHT = np.arange(256, dtype=np.uint16)
_WEIGHT[128:] = 0
_WEIGHT[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 0  # ASCII whitespace (str.isspace)
# one int64 per byte: 2**32 + its value for a counted byte (a text's sum: count and byte sum)
_TABLE = np.where(_WEIGHT > 0, (1 << 32) + _WEIGHT.astype(np.int64), 0)


def normalise_whitespace(texts: pa.Array) -> pa.Array:
    """Whitespace runs collapsed to one space, ends trimmed (as ``" ".join(s.split())``)."""
    words = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(texts))
    return pc.binary_join(words, pa.scalar(" ", words.type.value_type))


def fingerprints(texts: pa.Array) -> np.ndarray:
    """Per text: count (high bits) and sum of its ASCII non-whitespace bytes."""
    arr = texts.cast(pa.large_string())
    n = len(arr)
    out = np.zeros(n, dtype=np.int64)
    if n == 0 or arr.buffers()[2] is None:
        return out
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    a = 0
    while a < n:  # blocks of texts of about _BLOCK_BYTES
        b = int(np.searchsorted(offsets, offsets[a] + _BLOCK_BYTES, side="right"))
        b = min(n, max(b - 1, a + 1))
        chunk = np.append(data[offsets[a] : offsets[b]], np.uint8(0))  # a 0 closes the last
        starts = offsets[a:b] - offsets[a]
        filled = np.diff(offsets[a : b + 1]) > 0  # reduceat gives empty texts a neighbour
        out[a:b] = np.where(filled, np.add.reduceat(_TABLE[chunk], starts), 0)
        a = b
    return out


def identical_texts(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Per position, whether ``a`` and ``b`` are equal after whitespace normalisation."""
    fp_a, fp_b = fingerprints(a), fingerprints(b)
    same = np.zeros(len(a), dtype=bool)
    rows = np.flatnonzero(fp_a == fp_b)
    if len(rows):
        take = pa.array(rows, pa.int64())
        eq = pc.equal(normalise_whitespace(a.take(take)), normalise_whitespace(b.take(take)))
        same[rows] = to_numpy(pc.fill_null(eq, False))
    return same
