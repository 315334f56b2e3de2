"""Pass 1 of the pair stage: a scored pool's keys, rewards and flags, grouped by prompt.

Reads only what selection needs — prompt keys, sample indices, rewards, finish reasons and a
per-response "empty text" flag computed batch by batch (the text itself is dropped at once) —
from a file, a folder of shards or a stage folder (:mod:`sweetspot.pairs.scan`, files read by
worker threads, merged here in order). Texts stay in the files, except those of the rows the
strategies pick among prompts seen whole in one batch (:mod:`sweetspot.pairs.capture`); pass 2
(:mod:`sweetspot.pairs.texts`) fetches the other picked rows' texts only. Memory grows with the
number of responses (a few bytes each) and the pairs' text, never with the pool's text. Every
bad row is reported by file, row (JSONL: line) and field; the row is found when the error
happens, not carried along.

Layouts, detected from the columns:
- wide, one row per prompt: ``prompt``/``instruction``, ``responses``/``output``,
  ``rewards``/``scores`` (lists of equal length; the list position is the sample index);
- long, one row per response: ``prompt`` or ``prompt_id`` (+ a prompt table), ``sample_idx``,
  ``response``/``text``, ``reward``;
- a stage folder written by ``sweetspot sample`` and ``sweetspot score``: ``prompts.parquet``,
  ``samples/`` and ``scores/``, joined by (prompt_id, sample_idx).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from sweetspot.errors import InputError
from sweetspot.io import list_table_files
from sweetspot.pairs.capture import Picker, TextBudget
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.scan import (
    DEFAULT_COLUMNS,
    FileScan,
    json_error,
    pick,
    scan_long,
    scan_prompt_table,
    scan_scores,
    scan_wide,
)
from sweetspot.pairs.sources import JsonReadError, SourceFile, map_ordered
from sweetspot.pairs.texts import (
    ArrowTexts,
    ChunkedMessages,
    MessageSource,
    StreamedTexts,
    TextFile,
    TextSource,
)
from sweetspot.stages import SCORE

# A progress hook: called with the description and total (in files) of a pass, then with ""
# and the fraction of a file that each batch covered.
ProgressHook = Callable[[str, float], None] | None


@dataclass
class Pool:
    """A scored pool: all prompts, and their usable responses as flat arrays.

    The responses of prompt ``p`` are the flat rows ``offsets[p]:offsets[p+1]``, ordered by
    sample index; prompts are in the order the input first names them (outputs are sorted by
    prompt id: ``id_order``). Only finite rewards of non-empty (and, when asked, non-truncated)
    responses are here; the others are counted in ``dropped``. ``texts`` and ``messages`` fetch
    the response texts and prompt messages that a pair needs (from the files, for a pool loaded
    by :func:`load_pool`).
    """

    prompt_ids: np.ndarray
    messages: MessageSource | pa.Array
    offsets: np.ndarray
    sample_idx: np.ndarray
    rewards: np.ndarray
    texts: TextSource
    responses_in: int
    dropped: dict[str, int] = field(default_factory=dict)
    layout: str = "wide"
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.messages, (pa.Array, pa.ChunkedArray)):
            self.messages = ChunkedMessages.from_array(self.messages)

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    @cached_property
    def prompt_id_array(self) -> pa.Array:
        return pa.array(self.prompt_ids.tolist(), pa.string())

    @cached_property
    def id_rank(self) -> np.ndarray:
        """Each prompt's position when prompts are sorted by id (the order of output rows)."""
        rank = np.empty(self.n_prompts, dtype=np.int64)
        rank[np.argsort(self.prompt_ids, kind="stable")] = np.arange(self.n_prompts)
        return rank

    def context(self, ddof: float = 0.0, seed: int = 0) -> PoolContext:
        """Statistics of this pool for pair selection."""
        return PoolContext(
            self.rewards, self.offsets, self.sample_idx, self.prompt_ids, ddof=ddof, seed=seed
        )


def _guard_json(fn: Callable, file: SourceFile, cols: dict):
    """``fn()``, with a JSON reader failure turned into an error naming the bad line."""
    try:
        return fn()
    except JsonReadError as e:
        raise json_error(e, file, cols) from None


# -- merging files -----------------------------------------------------------------------------


class _Prompts:
    """The prompts met so far: id -> code (order of first appearance), where each prompt's
    messages are (an Arrow chunk and a row in it) and where it was first seen."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.ids: list[str] = []
        self.loc: list[tuple[int, int]] = []
        self.origin: list[tuple[int, int]] = []
        self.chunks: list[pa.Array] = []

    def add_chunk(self, messages: pa.Array) -> int:
        self.chunks.append(messages)
        return len(self.chunks) - 1

    def intern(self, pid: str, loc: tuple[int, int], origin: tuple[int, int]) -> tuple[int, bool]:
        """The code of ``pid`` and whether it is new."""
        code = self.code.get(pid)
        if code is not None:
            return code, False
        code = len(self.ids)
        self.code[pid] = code
        self.ids.append(pid)
        self.loc.append(loc)
        self.origin.append(origin)
        return code, True


class _Columns:
    """Per-response arrays filled batch by batch: each is allocated once for the expected
    number of rows (``reserve``) and grows by doubling past it, so nothing is concatenated."""

    def __init__(self, **dtypes) -> None:
        self.dtypes = dtypes
        self.arrays: dict[str, np.ndarray] = {}
        self.filled: dict[str, int] = {}
        self.rows = 0
        self.expected = 0

    def reserve(self, rows: int) -> None:
        self.expected = rows

    def append(self, n: int, **arrays: np.ndarray | None) -> None:
        for k, v in arrays.items():
            if v is None:
                continue
            a, f = self.arrays.get(k), self.filled.get(k, 0)
            if a is None or f + len(v) > len(a):
                size = max(f + len(v), self.expected, 2 * (0 if a is None else len(a)), 1 << 16)
                grown = np.empty(size, dtype=self.dtypes[k])
                if a is not None:
                    grown[:f] = a[:f]
                a = self.arrays[k] = grown
            a[f : f + len(v)] = v
            self.filled[k] = f + len(v)
        self.rows += n

    def take(self, name: str) -> np.ndarray:
        """The filled part of a column (empty if nothing was appended); the column is gone."""
        a = self.arrays.pop(name, None)
        if a is None:
            return np.zeros(0, dtype=self.dtypes[name])
        return a[: self.filled.pop(name)]


@dataclass
class _Merge:
    """Pass 1's results across files, in file order."""

    prompts: _Prompts = field(default_factory=_Prompts)
    data: _Columns = field(
        default_factory=lambda: _Columns(
            code=np.int32, idx=np.int64, reward=np.float64, nonempty=bool, truncated=bool
        )
    )
    table: dict[str, tuple[int, int]] | None = None  # prompt table: id -> messages location
    files: list[SourceFile] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # global id of each file's first response
    text_files: list[TextFile] = field(default_factory=list)
    caught_ids: list[np.ndarray] = field(default_factory=list)  # texts caught in pass 1
    caught_texts: list[pa.Array] = field(default_factory=list)
    caught_rows: dict[int, int] = field(default_factory=dict)  # code -> most rows seen at once

    def add(self, fs: FileScan) -> None:
        """Append one scanned file (prompts new to the pool get the next codes)."""
        file_no = len(self.files)
        self.files.append(fs.file)
        start = self.data.rows
        self.starts.append(start)
        for b in fs.batches:
            keys = b.keys
            chunk = self.prompts.add_chunk(keys.messages) if keys.messages is not None else None
            lut = np.empty(len(keys.ids), dtype=np.int32)
            for j, pid in enumerate(keys.ids):
                loc = (chunk, j) if chunk is not None else self.table[pid]
                code, new = self.prompts.intern(pid, loc, (file_no, int(keys.first_rows[j])))
                if fs.wide and not new:
                    raise self._duplicate_prompt(code, fs.file, int(keys.first_rows[j]), keys, j)
                lut[j] = code
            codes = lut[keys.index]
            if b.parent is not None:
                codes = codes[b.parent]
            self.data.append(
                len(b.idx),
                code=codes,
                idx=b.idx,
                reward=b.reward,
                nonempty=b.nonempty,
                truncated=b.truncated,
            )
        if fs.text_column is not None:
            self.text_files.append(
                TextFile(fs.file, start, self.data.rows - start, fs.text_column, fs.wide, fs.kept)
            )
        for c in fs.caught:
            self.caught_ids.append(start + c.positions)
            self.caught_texts.append(c.texts)
            for pid, count in zip(c.pids, c.counts.tolist()):
                code = self.prompts.code[pid]
                if count > self.caught_rows.get(code, 0):
                    self.caught_rows[code] = count

    def _duplicate_prompt(self, code: int, file: SourceFile, row: int, keys, j: int):
        f_no, f_row = self.prompts.origin[code]
        other = self.files[f_no]
        content = keys.messages[j].as_py()[-1]["content"]
        shown = content if len(content) <= 60 else content[:57] + "..."
        where = "row" if other is file else f"{other} row"
        return InputError(
            f"prompt {self.prompts.ids[code]} ({shown!r}) has a second row; first seen in "
            f"{where} {other.line(f_row)} (a wide file has one row per prompt)",
            file=str(file),
            row=file.line(row),
            field=keys_field(file),
        )

    def where(self, g: int) -> tuple[SourceFile, int]:
        """The file and 0-based row of global response ``g`` (long layouts)."""
        k = int(np.searchsorted(np.asarray(self.starts), g, side="right") - 1)
        return self.files[k], g - self.starts[k]


def keys_field(file: SourceFile) -> str:
    return pick(file.names, DEFAULT_COLUMNS, "prompt") or "prompt"


def _load_prompt_table(path: Path, merge: _Merge) -> dict[str, tuple[int, int]]:
    """prompt_id -> where its messages are (a chunk of the merge's prompts), from a table."""
    out: dict[str, tuple[int, int]] = {}
    for f in list_table_files(path):
        file = SourceFile(f)
        for pids, msgs in _guard_json(lambda file=file: scan_prompt_table(file), file, {}):
            chunk = merge.prompts.add_chunk(msgs)
            for i, pid in enumerate(pids):
                out[pid] = (chunk, i)
    return out


# -- the pool ----------------------------------------------------------------------------------


def load_pool(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    prompts: str | Path | None = None,
    exclude_truncated: bool = False,
    max_samples: int | None = None,
    progress: ProgressHook = None,
    picker: Picker | None = None,
) -> Pool:
    """Load a scored pool's selection data from ``path`` (file, folder of shards, or stage
    folder); the texts stay in the files until a pair needs them (``pool.texts``), except those
    of the rows ``picker`` picks, caught on the way (:mod:`sweetspot.pairs.capture`).

    ``columns`` maps a logical field (prompt, prompt_id, responses, rewards, response, reward,
    sample_idx, finish_reason) to the input's column name. ``prompts`` is a prompt table for long
    rows that carry only ``prompt_id``. Non-finite rewards and empty responses are dropped and
    counted; truncated responses (finish_reason ``length``) too when ``exclude_truncated``.
    ``max_samples`` keeps only the first that many samples of each prompt (sample_idx below it):
    the others are not part of the pool at all. ``progress(description, total)`` starts the
    pass, ``progress("", fraction)`` advances it.
    """
    path = Path(path)
    cols = dict(DEFAULT_COLUMNS)
    for k, v in (columns or {}).items():
        if k not in cols:
            raise InputError(f"unknown column key {k!r}; use one of {', '.join(cols)}")
        cols[k] = (v,)
    merge = _Merge()
    samples, scores_dir = SCORE.path(path, "samples"), SCORE.path(path, "scores")
    stage = path.is_dir() and samples.is_dir() and scores_dir.is_dir()
    scored = stage and any(f.suffix in (".parquet", ".jsonl") for f in scores_dir.iterdir())
    if path.is_dir() and samples.is_dir() and not scored:
        raise InputError(
            "this folder has samples but no scores yet: run `sweetspot score --input "
            f"{path}` first, then pair",
            file=str(path),
        )
    if stage:
        merge.table = _load_prompt_table(path / "prompts.parquet", merge)
        files = [SourceFile(f) for f in list_table_files(path / "samples")]
        layout = "stage"
    else:
        if prompts:
            merge.table = _load_prompt_table(Path(prompts), merge)
        elif path.is_dir() and (path / "prompts.parquet").exists():
            merge.table = _load_prompt_table(path / "prompts.parquet", merge)
        files = [SourceFile(f) for f in list_table_files(path) if f.name != "prompts.parquet"]
        layout = None
        for f in files:  # every file in one layout (a JSONL file: the first block tells)
            names = _guard_json(lambda f=f: f.names, f, cols)
            if not names:
                continue
            this = "wide" if any(pick(names, cols, k) for k in ("responses", "rewards")) else "long"
            layout = layout or this
            if this != layout:
                raise InputError(
                    f"file is in the {this} layout, earlier files in the {layout} one", file=str(f)
                )
        layout = layout or "wide"
    if progress is not None:
        scores = len(list_table_files(path / "scores")) if stage else 0
        progress("pass 1: rewards", float(len(files) + scores))

    score_files = {f.name: f for f in list_table_files(path / "scores")} if stage else {}

    budget = TextBudget() if picker is not None else None  # pass 2 follows: keep short texts

    def scan(f: SourceFile) -> FileScan:
        tick = _ticker(f, progress)
        if stage or layout == "long":
            mirror = score_files.get(f.path.name)
            fn = lambda: scan_long(  # noqa: E731
                f,
                cols,
                merge.table,
                with_reward=not stage,
                exclude_truncated=exclude_truncated,
                max_samples=max_samples,
                tick=tick,
                picker=picker,
                scores=SourceFile(mirror) if mirror is not None else None,
                budget=budget,
            )
        else:
            fn = lambda: scan_wide(f, cols, tick, picker, max_samples)  # noqa: E731
        out = _guard_json(fn, f, cols)
        tick(None)
        return out

    if layout != "wide" and all(f.is_parquet for f in files):
        merge.data.reserve(sum(f.metadata.num_rows for f in files))
    matched = True
    for fs in map_ordered(scan, [f for f in files if stage or f.names]):
        merge.add(fs)
        matched &= fs.scores_matched
    if not stage and merge.data.rows == 0 and not merge.prompts.ids:
        raise InputError("the pool is empty: no rows found", file=str(path))
    # a stage folder whose score shards mirror its sample shards has its rewards already
    joined = stage and matched and sorted(score_files) == sorted(f.path.name for f in files)
    if joined and progress is not None:
        progress("", float(len(score_files)))  # read with their sample shards
    return _assemble(
        merge,
        layout,
        str(path),
        path if stage and not joined else None,
        exclude_truncated,
        progress,
        max_samples,
    )


def _ticker(file: SourceFile, progress: ProgressHook) -> Callable[[int | None], None]:
    """Per batch, advance the progress by the share of the file its rows are (Parquet knows
    its rows; a JSONL file advances when it is done); ``None`` completes the file."""
    if progress is None:
        return lambda rows: None
    total = (file.metadata.num_rows or None) if file.is_parquet else None
    done = [0.0]

    def tick(rows: int | None) -> None:
        step = 1.0 - done[0] if rows is None else (rows / total if total else 0.0)
        done[0] += step
        progress("", step)

    return tick


# -- joining scores (stage folders) ------------------------------------------------------------


def _join_scores(
    merge: _Merge, stage: Path, code: np.ndarray, idx: np.ndarray, progress: ProgressHook
) -> np.ndarray:
    """The reward of every sample (``code``, ``idx``) from ``stage/scores``, joined by
    (prompt_id, sample_idx); a sample without a score gets NaN (counted as non-finite)."""
    files = [SourceFile(f) for f in list_table_files(stage / "scores")]
    parts: dict[str, list[np.ndarray]] = {"code": [], "idx": [], "reward": [], "file": []}

    def scan(f: SourceFile) -> FileScan:
        tick = _ticker(f, progress)
        out = _guard_json(lambda: scan_scores(f, tick), f, DEFAULT_COLUMNS)
        tick(None)
        return out

    for file_no, fs in enumerate(map_ordered(scan, files)):
        for b in fs.batches:
            lut = np.array([merge.prompts.code.get(p, -1) for p in b.keys.ids], dtype=np.int32)
            parts["code"].append(lut[b.keys.index])
            parts["idx"].append(b.idx)
            parts["reward"].append(b.reward)
            parts["file"].append(np.full(len(b.idx), file_no, dtype=np.int32))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    r_code, r_idx = cat["code"].astype(np.int32), cat["idx"].astype(np.int64)
    r_reward, r_file = cat["reward"].astype(np.float64), cat["file"].astype(np.int32)
    if np.array_equal(r_code, code) and np.array_equal(r_idx, idx):
        return r_reward  # scores written shard by shard beside the samples, in the same order
    r_row = np.arange(len(r_code)) - np.asarray([0, *np.cumsum(np.bincount(r_file))])[r_file]
    known = np.flatnonzero(r_code >= 0)  # scores of prompts that have no sample are ignored
    if len(known) < len(r_code):
        r_code, r_idx, r_reward, r_file, r_row = (
            a[known] for a in (r_code, r_idx, r_reward, r_file, r_row)
        )
    s_key, r_key = _pair_keys((code, idx), (r_code, r_idx))
    order = np.argsort(r_key, kind="stable")
    sk = r_key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if len(dup):
        a, b = int(order[dup[0]]), int(order[dup[0] + 1])
        fa, fb = files[r_file[a]], files[r_file[b]]
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({merge.prompts.ids[r_code[b]]}, {r_idx[b]}); "
            f"first seen in {fa} row {fa.line(int(r_row[a]))}",
            file=str(fb),
            row=fb.line(int(r_row[b])),
            field="sample_idx",
        )
    reward = np.full(len(s_key), np.nan)
    if len(sk):
        pos = np.minimum(np.searchsorted(sk, s_key), len(sk) - 1)
        hit = sk[pos] == s_key
        reward[hit] = r_reward[order[pos[hit]]]
    return reward


def _pair_keys(*pairs: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """One int64 key per (code, sample_idx), equal exactly when both are, for several arrays."""
    top = max((int(i.max()) for _, i in pairs if len(i)), default=0) + 1
    n_codes = max((int(c.max()) for c, _ in pairs if len(c)), default=0) + 1
    if n_codes * top < 2**62:
        return [c.astype(np.int64) * top + i for c, i in pairs]
    uniq = np.unique(np.concatenate([i for _, i in pairs]))
    return [c.astype(np.int64) * len(uniq) + np.searchsorted(uniq, i) for c, i in pairs]


# -- grouping ----------------------------------------------------------------------------------


def _group_order(code: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """The permutation that groups responses by prompt (in code order) with sample indices
    ascending, stably; None when they already are (the usual shard layout: each prompt's
    samples one sorted run, prompts in order of first appearance). Runs are ordered instead of
    rows where that suffices (a prompt's samples in several shards)."""
    n = len(code)
    if n < 2:
        return None
    brk = (code[1:] != code[:-1]) | (idx[1:] <= idx[:-1])
    starts = np.concatenate([[0], np.flatnonzero(brk) + 1])
    if np.all(np.diff(code[starts]) > 0):
        return None
    if len(starts) <= n // 4:
        lens = np.diff(np.concatenate([starts, [n]]))
        perm = np.lexsort((idx[starts], code[starts]))
        out_starts = np.concatenate([[0], np.cumsum(lens[perm])[:-1]])
        order = np.repeat(starts[perm] - out_starts, lens[perm]) + np.arange(n)
        c, i = code[order], idx[order]
        if np.all((c[1:] > c[:-1]) | ((c[1:] == c[:-1]) & (i[1:] >= i[:-1]))):
            return order
    return np.lexsort((idx, code))


def _check_unique(merge: _Merge, code: np.ndarray, idx: np.ndarray, order: np.ndarray) -> None:
    """Two responses with the same (prompt, sample index) are an error naming both rows."""
    c, i = code[order], idx[order]
    dup = np.flatnonzero((c[1:] == c[:-1]) & (i[1:] == i[:-1]))
    if not len(dup):
        return
    a, b = int(order[dup[0]]), int(order[dup[0] + 1])
    fa, ra = merge.where(a)
    fb, rb = merge.where(b)
    raise InputError(
        f"duplicate (prompt_id, sample_idx) = ({merge.prompts.ids[code[b]]}, {idx[b]}); "
        f"first seen in {fa} row {fa.line(ra)}",
        file=str(fb),
        row=fb.line(rb),
        field="sample_idx",
    )


def _assemble(
    merge: _Merge,
    layout: str,
    source: str,
    stage: Path | None,
    exclude_truncated: bool,
    progress: ProgressHook = None,
    max_samples: int | None = None,
) -> Pool:
    """Group the responses by prompt (sorting only what is out of order), check they are
    unique, drop the unusable ones (counted) and index what is left by prompt."""
    data = merge.data
    code = data.take("code")
    idx = data.take("idx")
    if stage is not None:  # rewards by a pool-wide join with the score shards
        data.take("reward")
        rewards = _join_scores(merge, stage, code, idx, progress)
    else:
        rewards = data.take("reward")
    order = _group_order(code, idx)
    if order is not None:
        _check_unique(merge, code, idx, order)
    finite = np.isfinite(rewards)
    nonempty = data.take("nonempty")
    inside = None if max_samples is None else idx < max_samples  # the first n samples only
    if inside is not None:
        finite &= inside
        nonempty &= inside
    keep = finite & nonempty
    outside = 0 if inside is None else int((~inside).sum())
    dropped = {
        "non_finite_reward": int((~finite).sum()) - outside,
        "empty_response": int((finite & ~nonempty).sum()),
    }
    del finite, nonempty
    if exclude_truncated:
        truncated = data.take("truncated")
        if len(truncated) != len(keep):  # a wide pool has no finish reasons
            truncated = np.zeros(len(keep), dtype=bool)
        dropped["truncated"] = int((keep & truncated).sum())
        keep &= ~truncated
        del truncated
    everything = order is None and bool(keep.all())  # nothing to drop or move: no copies
    sel = None if everything else np.flatnonzero(keep) if order is None else order[keep[order]]
    del keep, order
    n_prompts = len(merge.prompts.ids)
    counts = np.bincount(code if sel is None else code[sel], minlength=n_prompts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    loc = np.array(merge.prompts.loc, dtype=np.int64).reshape(-1, 2)
    texts = StreamedTexts(merge.text_files, sel)
    if merge.caught_ids:
        # a prompt is complete when one catch call saw all of its rows (usable or not)
        rows_in = np.bincount(code, minlength=n_prompts)
        seen = np.zeros(n_prompts, dtype=np.int64)
        if merge.caught_rows:
            seen[list(merge.caught_rows)] = list(merge.caught_rows.values())
        texts.add_caught(
            np.concatenate(merge.caught_ids),
            pa.concat_arrays(merge.caught_texts),
            complete=seen == rows_in,
            offsets=offsets,
        )
    return Pool(
        prompt_ids=np.array(merge.prompts.ids, dtype=object),
        messages=ChunkedMessages(merge.prompts.chunks, loc[:, 0], loc[:, 1]),
        offsets=offsets,
        sample_idx=idx if sel is None else idx[sel],
        rewards=rewards if sel is None else rewards[sel],
        texts=texts,
        responses_in=len(rewards) - outside,
        dropped=dropped,
        layout=layout,
        source=source,
    )


__all__ = ["ArrowTexts", "DEFAULT_COLUMNS", "Pool", "TextSource", "load_pool", "map_ordered"]
