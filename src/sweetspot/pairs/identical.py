"""The identical-text rule (SPEC §2): chosen and rejected must differ after whitespace
normalisation (runs of whitespace as one space, ends trimmed: ``" ".join(s.split())``).

Normalising every pair's two texts in full costs about a second per strategy at the paper's
61k prompts. Two texts that are equal after normalisation have the same first word and the same
last word, so a cheap signature of each text's two end words — found in a 32-byte window at
each end — settles almost every pair; only pairs whose signatures agree (or cannot be
told, e.g. a word longer than the window) are normalised in full. The result is exactly the full
rule's; the signature only saves work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.pairs.arrays import to_numpy

WINDOW = 32  # bytes at each end of a text that the signature looks at (a multiple of 8)
_BLOCK = 1 << 16  # texts per block (bounds the (texts, WINDOW) byte matrices)
# Whitespace as Python's str.split() and Arrow's utf8_split_whitespace see it: ASCII bytes, and
# the UTF-8 encodings of U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F,
# U+3000.
_ASCII_WS = np.zeros(256, dtype=bool)
_ASCII_WS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def normalise_whitespace(texts: pa.Array) -> pa.Array:
    """Whitespace runs collapsed to one space, ends trimmed (as ``" ".join(s.split())``)."""
    words = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(texts))
    return pc.binary_join(words, pa.scalar(" ", words.type.value_type))


def _whitespace(m: np.ndarray) -> np.ndarray:
    """Which bytes of a (texts, WINDOW) UTF-8 byte matrix belong to a whitespace character."""
    ws = _ASCII_WS[m]
    b1 = np.zeros_like(m)
    b1[:, :-1] = m[:, 1:]
    b2 = np.zeros_like(m)
    b2[:, :-2] = m[:, 2:]
    two = (m == 0xC2) & ((b1 == 0x85) | (b1 == 0xA0))
    e2_80 = (
        (m == 0xE2)
        & (b1 == 0x80)
        & (((b2 >= 0x80) & (b2 <= 0x8A)) | np.isin(b2, (0xA8, 0xA9, 0xAF)))
    )
    three = (
        ((m == 0xE1) & (b1 == 0x9A) & (b2 == 0x80))
        | e2_80
        | ((m == 0xE2) & (b1 == 0x81) & (b2 == 0x9F))
        | ((m == 0xE3) & (b1 == 0x80) & (b2 == 0x80))
    )
    ws |= two | three
    ws[:, 1:] |= two[:, :-1] | three[:, :-1]
    ws[:, 2:] |= three[:, :-2]
    return ws


def _first_word(
    m: np.ndarray, ws: np.ndarray, whole: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first word of each row of a byte matrix ``m`` whose whitespace bytes are ``ws``: its
    bytes (left-aligned, zero-padded, packed as uint64), its length, and whether it is certain
    (rows of a whole text are padded with spaces; a word that may run past the window is not
    certain)."""
    cols = np.arange(m.shape[1])
    nonws = ~ws
    has = nonws.any(axis=1)
    first = np.argmax(nonws, axis=1)
    after = ws & (cols > first[:, None])
    has_end = after.any(axis=1)
    length = np.where(has_end, np.argmax(after, axis=1), m.shape[1]) - first
    word = np.take_along_axis(m, np.minimum(first[:, None] + cols, m.shape[1] - 1), axis=1)
    word[cols >= length[:, None]] = 0
    return np.ascontiguousarray(word).view(np.uint64), length, has & (has_end | whole)


@dataclass
class EdgeSignatures:
    """Per text: bytes (packed), byte length and certainty of its first and of its last word."""

    head: tuple[np.ndarray, np.ndarray, np.ndarray]
    tail: tuple[np.ndarray, np.ndarray, np.ndarray]

    def take(self, pos: np.ndarray) -> EdgeSignatures:
        return EdgeSignatures(tuple(a[pos] for a in self.head), tuple(a[pos] for a in self.tail))


def edge_signatures(texts: pa.Array) -> EdgeSignatures:
    """The end-word signatures of every text (valid UTF-8, no nulls)."""
    arr = texts.cast(pa.large_string())
    n = len(arr)
    packed = (n, WINDOW // 8)
    head = [np.zeros(packed, np.uint64), np.zeros(n, np.int64), np.zeros(n, bool)]
    tail = [np.zeros(packed, np.uint64), np.zeros(n, np.int64), np.zeros(n, bool)]
    if n == 0:
        return EdgeSignatures(tuple(head), tuple(tail))
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    buf = arr.buffers()[2]
    data = (
        np.frombuffer(buf, dtype=np.uint8)
        if buf is not None and buf.size
        else np.zeros(1, np.uint8)
    )
    cols = np.arange(WINDOW)
    for a in range(0, n, _BLOCK):
        b = min(n, a + _BLOCK)
        lo, hi = offsets[a:b], offsets[a + 1 : b + 1]
        size = hi - lo
        whole = size <= WINDOW
        width = np.minimum(size, WINDOW)
        valid = cols < width[:, None]
        for start, out, flip in ((lo, head, False), (hi - width, tail, True)):
            idx = np.minimum(start[:, None] + cols, len(data) - 1)
            m = np.where(valid, data[idx], np.uint8(32))
            ws = _whitespace(m)
            if flip:
                # the last word read backwards: reverse the text bytes, keep the padding after
                rev = np.where(valid, width[:, None] - 1 - cols, cols)
                m = np.take_along_axis(m, rev, axis=1)
                ws = np.take_along_axis(ws, rev, axis=1)
            h, length, sure = _first_word(m, ws, whole)
            out[0][a:b], out[1][a:b], out[2][a:b] = h, length, sure
    return EdgeSignatures(tuple(head), tuple(tail))


def identical_texts(
    a: pa.Array,
    b: pa.Array,
    sig_a: EdgeSignatures | None = None,
    sig_b: EdgeSignatures | None = None,
) -> np.ndarray:
    """Per position, whether ``a`` and ``b`` are equal after whitespace normalisation.

    ``sig_a``/``sig_b`` are the texts' :func:`edge_signatures` when already computed.
    """
    sig_a = sig_a or edge_signatures(a)
    sig_b = sig_b or edge_signatures(b)
    maybe = np.ones(len(a), dtype=bool)
    for (ha, la, ca), (hb, lb, cb) in ((sig_a.head, sig_b.head), (sig_a.tail, sig_b.tail)):
        maybe &= ~(ca & cb) | ((la == lb) & (ha == hb).all(axis=1))
    same = np.zeros(len(a), dtype=bool)
    rows = np.flatnonzero(maybe)
    if len(rows):
        take = pa.array(rows, pa.int64())
        eq = pc.equal(normalise_whitespace(a.take(take)), normalise_whitespace(b.take(take)))
        same[rows] = to_numpy(pc.fill_null(eq, False))
    return same
