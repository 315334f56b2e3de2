"""A scored pool read by DuckDB: per prompt, its rewards grouped in sample order.

One query per pool groups the responses by prompt — ``list(reward ORDER BY sample_idx)`` — and
flags each one (usable, non-finite reward, empty text, truncated); the lists map straight onto
the flat array plus offsets the numpy selection uses (:mod:`sweetspot.pairs.context`). Texts stay
in the files: :class:`SqlTexts` fetches the picked ones by a join on (prompt, sample index).

Layouts, detected from the columns:
- wide, one row per prompt: ``prompt``/``instruction``, ``responses``/``output``,
  ``rewards``/``scores`` (lists of equal length; the list position is the sample index);
- long, one row per response: ``prompt`` or ``prompt_id`` (+ a prompt table), ``sample_idx``,
  ``response``/``text``, ``reward``;
- a run folder written by ``sweetspot sample`` and ``sweetspot score``: ``prompts.parquet``,
  ``samples/`` and ``scores/``, joined by (prompt_id, sample_idx).
"""

from __future__ import annotations

import copy
import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.pairs.arrays import to_numpy
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.prompts import DEFAULT_COLUMNS, load_prompt_table, prompt_messages
from sweetspot.pairs.source import BLANK, Files, first_row, located, rows_of, table_files

# Why a response is left out, by code (0: usable); the order is the order of the checks.
RESPONSE_DROPS = ("non_finite_reward", "empty_response", "truncated")
_LONG = ["prompt", "prompt_id", "sample_idx", "response", "reward", "finish_reason"]


class TextSource:
    """Texts of flat response rows (in the order asked)."""

    def take(self, rows: np.ndarray) -> pa.Array:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Pool:
    """A scored pool: all prompts (sorted by id), their usable responses as flat arrays.

    The responses of prompt ``p`` are the flat rows ``offsets[p]:offsets[p+1]``, ordered by
    sample index. Only finite rewards of non-empty (and, when asked, non-truncated) responses
    are here; the others are counted in ``dropped``.
    """

    prompt_ids: np.ndarray
    messages: pa.Array
    offsets: np.ndarray
    sample_idx: np.ndarray
    rewards: np.ndarray
    texts: TextSource
    responses_in: int
    dropped: dict[str, int] = field(default_factory=dict)
    layout: str = "wide"
    source: str = ""

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

    def without(self, uids: np.ndarray, truncated: int = 0) -> Pool:
        """This pool less the responses ``uids`` (found empty), counted as empty responses;
        ``truncated`` of the empty ones had been left out as truncated instead."""
        drop = np.isin(self.texts.uid, uids)
        seg = np.repeat(np.arange(self.n_prompts), np.diff(self.offsets))
        n = np.bincount(seg[~drop], minlength=self.n_prompts)
        dropped = dict(self.dropped)
        dropped["empty_response"] += int(drop.sum()) + truncated
        if truncated:
            dropped["truncated"] -= truncated
        texts = copy.copy(self.texts)
        texts.uid = self.texts.uid[~drop]
        return dataclasses.replace(
            self,
            offsets=np.concatenate([[0], np.cumsum(n)]).astype(np.int64),
            sample_idx=self.sample_idx[~drop],
            rewards=self.rewards[~drop],
            texts=texts,
            dropped=dropped,
        )

    def context(self, ddof: float = 0.0, seed: int = 0) -> PoolContext:
        """Statistics of this pool for pair selection."""
        return PoolContext(
            self.rewards, self.offsets, self.sample_idx, self.prompt_ids, ddof=ddof, seed=seed
        )


class FetchedTexts(TextSource):
    """The texts of a sorted set of responses (``uids``), fetched at once; ``take`` looks up
    any of them by flat row (``uid_of_row``), ``signatures`` their fingerprints
    (computed once for all strategies)."""

    def __init__(self, uids: np.ndarray, texts: pa.Array, uid_of_row: np.ndarray) -> None:
        self.rows = uids
        self.texts = texts
        self.uid_of_row = uid_of_row
        self._signatures = None

    def _pos(self, rows: np.ndarray) -> np.ndarray:
        rows = self.uid_of_row[rows]
        pos = np.searchsorted(self.rows, rows)
        if len(rows) and (pos.max() >= len(self.rows) or np.any(self.rows[pos] != rows)):
            raise KeyError("a row whose text was not fetched")
        return pos

    def take(self, rows: np.ndarray) -> pa.Array:
        return self.texts.take(pa.array(self._pos(rows), pa.int64()))

    def signatures(self, rows: np.ndarray) -> np.ndarray:
        """The :func:`~sweetspot.pairs.identical.fingerprints` of the texts of ``rows``."""
        from sweetspot.pairs.identical import fingerprints

        if self._signatures is None:
            self._signatures = fingerprints(self.texts)
        return self._signatures[self._pos(rows)]


class SqlTexts(TextSource):
    """The texts of flat rows, fetched from the input by a join on (prompt key, sample index).

    ``keys`` holds the prompt key of each query group (as the input has it); a flat row's
    response is ``uid[row]``, whose query group and sample index are ``group`` and ``idx``
    (``prompt`` is its prompt's position in the pool); ``truncated`` lists (prompt, index)
    keys of responses left out as truncated. ``reads`` counts the texts fetched.
    """

    def __init__(self, con, view, keys, group, idx, group_prompt, truncated) -> None:
        self.con, self.view = con, view
        self.keys, self.group, self.idx, self._group_prompt = keys, group, idx, group_prompt
        self.truncated = truncated
        self.uid = np.arange(len(idx))
        self.reads = 0

    def take(self, rows: np.ndarray) -> pa.Array:
        return self._fetch(rows, blanks=False)[0]

    def take_finding_blanks(self, rows: np.ndarray) -> tuple[pa.Array, np.ndarray, int]:
        """The texts of ``rows`` and, from the same pass over the input, the responses whose
        text is empty: their uids among the pool's, and how many were left out as truncated."""
        return self._fetch(rows, blanks=True)

    def _fetch(self, rows: np.ndarray, blanks: bool):
        uid = self.uid[np.asarray(rows, dtype=np.int64)]
        uniq, back = np.unique(uid, return_inverse=True)
        want = pa.table(
            {
                "key": self.keys.take(pa.array(self.group[uniq])),
                "idx": pa.array(self.idx[uniq]),
                "pos": pa.array(np.arange(len(uniq))),
            }
        )
        self.con.register("sweetspot_want", want)
        on = "s.prompt_key = w.key AND s.sample_idx = w.idx"
        blank = blank_sql("s.response")
        got = self.con.sql(
            f"SELECT w.pos, s.response AS text, s.prompt_key, s.sample_idx FROM {self.view} s "
            + (
                f"LEFT JOIN sweetspot_want w ON {on} WHERE w.pos IS NOT NULL OR {blank}"
                if blanks
                else f"JOIN sweetspot_want w ON {on}"
            )
        ).to_arrow_table()
        self.con.unregister("sweetspot_want")
        self.reads += len(uniq)
        pos = to_numpy(pc.fill_null(got.column("pos"), -1), np.int64)
        hit = np.flatnonzero(pos >= 0)
        texts = got.column("text").take(pa.array(hit[np.argsort(pos[hit])]))
        texts = texts.combine_chunks().cast(pa.large_string())
        if len(texts) != len(uniq):
            raise InputError("a picked response was not found again in the input")
        texts = texts.take(pa.array(back, pa.int64()))
        if not blanks:
            return texts, None, 0
        empty = got.filter(pa.array(pos < 0) if len(pos) else pa.array([], pa.bool_()))
        wanted_blank = np.flatnonzero(_blank_texts(texts)) if len(texts) else []
        return texts, *self._blank_uids(empty, uid[wanted_blank])

    def _blank_uids(self, empty: pa.Table, also: np.ndarray) -> tuple[np.ndarray, int]:
        """Pool uids of the blank responses of ``empty`` (rows with key and index) plus
        ``also``, and how many blank ones were truncated."""
        if not empty.num_rows:
            return np.unique(also), 0
        code = {_hashable(k): g for g, k in enumerate(self.keys.to_pylist())}
        group = np.array([code[_hashable(k)] for k in empty.column("prompt_key").to_pylist()])
        p = self._group_prompt[group]
        i = to_numpy(empty.column("sample_idx"), np.int64)
        width = int(max(self.idx.max(initial=0), i.max(initial=0))) + 1
        key = p * width + i
        # sorted: a pool is in (prompt, index) order
        pool_keys = self._group_prompt[self.group] * width + self.idx
        at = np.minimum(np.searchsorted(pool_keys, key), len(pool_keys) - 1)
        found = pool_keys[at] == key if len(pool_keys) else np.zeros(len(key), bool)
        moved = int(np.isin(key, self.truncated[:, 0] * width + self.truncated[:, 1]).sum())
        return np.unique(np.concatenate([at[found], also])).astype(np.int64), moved


def _hashable(v):
    return tuple(tuple(sorted(m.items())) for m in v) if isinstance(v, list) else v


def _blank_texts(texts: pa.Array) -> np.ndarray:
    """Per text: null or only whitespace."""
    blank = pc.or_kleene(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts))
    return to_numpy(pc.fill_null(blank, True))


def blank_sql(text: str) -> str:
    """SQL: the text is missing or only whitespace (the expression reads its first character
    and looks further only when that is a space)."""
    first = f"ascii({text})"
    return (
        f"({text} IS NULL OR {text} = '' OR (({first} <= 32 OR {first} IN (133, 160, 5760, "
        f"8232, 8233, 8239, 8287, 12288) OR {first} BETWEEN 8192 AND 8202) AND "
        f"regexp_full_match({text}, '{BLANK}')))"
    )


def connect():
    """A DuckDB connection of its own (the stage's views live in it)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET allocator_flush_threshold = '64MB'")  # give freed memory back
    return con


def load_pool(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    prompts: str | Path | None = None,
    exclude_truncated: bool = False,
    max_samples: int | None = None,
    con=None,
    defer_blank: bool = False,
) -> Pool:
    """Read a scored pool at ``path`` (a file, a folder of shards, a glob, or a run folder);
    the texts stay in the files until a pair needs them (``pool.texts``).

    ``columns`` maps a logical field (prompt, prompt_id, responses, rewards, response, reward,
    sample_idx, finish_reason) to the input's column name. ``prompts`` is a prompt table for long
    rows that carry only ``prompt_id``. Non-finite rewards and empty responses are dropped and
    counted; truncated responses (finish_reason ``length``) too when ``exclude_truncated``.
    ``max_samples`` keeps only the first that many samples of each prompt (sample_idx below it):
    the others are not part of the pool at all.

    ``defer_blank`` (long layouts): leave the texts unread — responses whose text is empty are
    then found while the picked texts are fetched (:meth:`SqlTexts.take_finding_blanks`) and
    taken out with :meth:`Pool.without`, so the texts are read once.
    """
    cols = dict(DEFAULT_COLUMNS)
    for k, v in (columns or {}).items():
        if k not in cols:
            raise InputError(f"unknown column key {k!r}; use one of {', '.join(cols)}")
        cols[k] = (v,)
    con = con or connect()
    reader = _Reader(con, Path(path), str(path), cols, exclude_truncated, max_samples)
    reader.defer_blank = defer_blank
    with reader.failures():
        return reader.read(prompts)


@dataclass
class _Reader:
    con: object
    path: Path
    text: str
    cols: dict
    exclude_truncated: bool
    max_samples: int | None
    defer_blank: bool = False
    sources: list[Files] = field(default_factory=list)

    @contextmanager
    def failures(self):
        """A JSONL file that failed inside a query: its own error (file, line, field)."""
        try:
            yield
        except Exception:
            for f in self.sources:
                if f.failure is not None:
                    raise f.failure from None
            raise

    def read(self, prompts) -> Pool:
        path = self.path
        stage = path.is_dir() and (path / "samples").is_dir()
        if stage:
            return self._stage()
        table = Path(prompts) if prompts else None
        if table is None and path.is_dir() and (path / "prompts.parquet").exists():
            table = path / "prompts.parquet"
        files = Files([f for f in table_files(self.text) if f.name != "prompts.parquet"])
        self.sources.append(files)
        layout = files.layout(self.cols)
        if not files.paths:
            raise InputError("the pool is empty: no rows found", file=self.text)
        if layout == "wide":
            wide = ["prompt", "responses", "rewards"]
            return self._wide(files.open(self.con, self.cols, wide, wide, "wide"))
        files.resolve(self.cols, _LONG, ["sample_idx", "response", "reward"])
        if "prompt" not in files.cols and "prompt_id" not in files.cols:
            raise InputError(
                f"missing column: prompt or prompt_id (found "
                f"{', '.join(files.schema(files.paths[0], self.cols).names)})",
                file=str(files.paths[0]),
                field="prompt",
            )
        files.check_types()
        view = files.relation(self.con, _LONG, "pool")
        by_id = "prompt" not in files.cols
        if by_id and table is None:
            raise InputError(
                "rows name prompt_id but no prompt table was given (--prompts FILE)",
                file=str(files.paths[0]),
                field=files.cols["prompt_id"],
            )
        return self._long(view, "long", table if by_id else None, files.cols)

    # -- layouts -----------------------------------------------------------------------------

    def _stage(self) -> Pool:
        path = self.path
        scores = sorted(
            p for p in (path / "scores").glob("*") if p.suffix in (".parquet", ".jsonl")
        )
        if not (path / "scores").is_dir() or not scores:
            raise InputError(
                "this run folder has samples but no scores yet: run `sweetspot score` on it first",
                file=str(path),
            )
        samples, score = Files(table_files(path / "samples")), Files(scores)
        self.sources += [samples, score]
        keys = ["prompt_id", "sample_idx", "response", "finish_reason"]
        s_view = samples.open(self.con, self.cols, keys, keys[:3], "samples")
        keys = ["prompt_id", "sample_idx", "reward"]
        r_view = score.open(self.con, self.cols, keys, keys, "scores")
        dup = self.con.sql(
            f"SELECT prompt_id, sample_idx FROM {r_view} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
        if dup:
            self._duplicate(r_view, "prompt_id", *dup[0])
        join = f"LEFT JOIN {r_view} r ON s.prompt_id = r.prompt_id AND s.sample_idx = r.sample_idx"
        if [f.name for f in samples.paths] == [f.name for f in score.paths]:
            # scores written shard by shard beside the samples: rows side by side, if they are
            aligned = self.con.sql(
                "SELECT bool_and(coalesce(s.prompt_id = r.prompt_id AND s.sample_idx = "
                "r.sample_idx, false)) "
                f"FROM (SELECT prompt_id, sample_idx FROM {s_view}) s POSITIONAL JOIN "
                f"(SELECT prompt_id, sample_idx FROM {r_view}) r"
            ).fetchall()[0][0]
            join = f"POSITIONAL JOIN (SELECT reward FROM {r_view}) r" if aligned else join
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW pool AS SELECT s.*, r.reward FROM {s_view} s {join}"
        )
        pool = self._long("pool", "stage", path / "prompts.parquet", {"prompt_id": "prompt_id"})
        self.con.execute(  # texts come from the samples alone
            f"CREATE OR REPLACE TEMP VIEW texts AS SELECT *, prompt_id AS prompt_key FROM {s_view}"
        )
        pool.texts.view = "texts"
        return pool

    def _code(self, text: str, reward: str, finish: str) -> str:
        """SQL of a response's drop code (0 usable, else 1 + index in RESPONSE_DROPS; 4: past
        ``max_samples``, not part of the pool)."""
        trunc = f"WHEN {finish} = 'length' THEN 3 " if self.exclude_truncated else ""
        outside = (
            "" if self.max_samples is None else f"WHEN sample_idx >= {self.max_samples} THEN 4 "
        )
        return (
            f"(CASE {outside}WHEN {reward} IS NULL OR NOT isfinite({reward}) THEN 1 "
            f"{'' if self.defer_blank else f'WHEN {blank_sql(text)} THEN 2 '}{trunc}"
            f"ELSE 0 END)::TINYINT"
        )

    def _long(self, view: str, layout: str, table: Path | None, cols: dict) -> Pool:
        key = "prompt_id" if table is not None else "prompt"
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW pool_keyed AS SELECT *, {key} AS prompt_key FROM {view}"
        )
        code = self._code("response", "reward", "finish_reason")
        got = self.con.sql(
            # one list of structs per prompt (a list per field could come in different
            # orders); numpy puts each prompt's responses in sample order
            f"SELECT prompt_key, list({{'i': sample_idx, 'r': coalesce(reward::DOUBLE, "
            f"'NaN'::DOUBLE), 'c': {code}}}) AS x, bool_or(sample_idx IS NULL OR sample_idx < 0) "
            f"AS bad FROM pool_keyed GROUP BY prompt_key ORDER BY prompt_key"
        ).to_arrow_table()
        if got.column("prompt_key").null_count or pc.any(got.column("bad")).as_py():
            self._check_keys(key, cols)
        keys = got.column("prompt_key").combine_chunks()
        chunks = got.column("x").chunks
        del got
        lens = np.concatenate([to_numpy(pc.list_value_length(c)) for c in chunks] or [[]])
        group = np.repeat(np.arange(len(lens), dtype=np.int32), lens.astype(np.int64))
        idx, reward = np.empty(len(group), np.int64), np.empty(len(group), np.float64)
        code, at = np.empty(len(group), np.int8), 0
        while chunks:  # one copy per field; each Arrow chunk goes once copied
            flat = chunks.pop(0).flatten()
            for out, name in ((idx, "i"), (reward, "r"), (code, "c")):
                out[at : at + len(flat)] = flat.field(name)
            at += len(flat)
        del flat
        pa.default_memory_pool().release_unused()
        if table is not None:
            ids, messages = self._by_table(keys, table, cols)
        else:
            ids, messages = self._by_prompt(keys, "pool_keyed", cols.get("prompt", "prompt"))
        arrays = [group, idx, reward, code]
        del group, idx, reward, code  # _assemble holds the only references (memory)
        return self._assemble(ids, messages, keys, arrays, layout, "pool_keyed")

    def _check_keys(self, key: str, cols: dict) -> None:
        """The first row without a sample index or prompt, or with a negative index."""
        idx = cols.get("sample_idx", "sample_idx")
        missing = "missing prompt id" if key == "prompt_id" else "missing prompt"
        for cond, msg, fld in (
            ("sample_idx IS NULL", "missing sample index", idx),
            ("sample_idx < 0", "sample index must be >= 0", idx),
            ("prompt_key IS NULL", missing, cols.get(key, key)),
        ):
            where = first_row(self.con, "pool_keyed", cond)
            if where:
                raise InputError(msg, file=where[0], row=where[1], field=fld)

    def _wide(self, view: str) -> Pool:
        """Wide rows, checked (lists present, of equal length, one row per prompt), as long
        rows: the list position is the sample index."""
        got = self.con.sql(
            f"SELECT file, row, len(responses), len(rewards) FROM {view} WHERE responses IS NULL "
            f"OR rewards IS NULL OR len(responses) <> len(rewards) ORDER BY file, row LIMIT 1"
        ).fetchall()
        if got:
            (file, row), nt, nr = located(*got[0][:2]), got[0][2], got[0][3]
            if nt is None or nr is None:
                fld = self.files_col("responses" if nt is None else "rewards")
                raise InputError("missing list", file=file, row=row, field=fld)
            msg = f"{nr} rewards for {nt} responses: lists must have equal length"
            raise InputError(msg, file=file, row=row, field=self.files_col("rewards"))
        got = self.con.sql(
            f"SELECT prompt, list(file ORDER BY file, row), list(row ORDER BY file, row) FROM "
            f"{view} GROUP BY prompt HAVING count(*) > 1 ORDER BY min(file), min(row) LIMIT 1"
        ).fetchall()
        if got:  # a wide file has one row per prompt
            prompt, files, rows = got[0]
            (fa, ra), (fb, rb) = located(files[0], rows[0]), located(files[1], rows[1])
            content = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            shown = content if len(content) <= 60 else content[:57] + "..."
            raise InputError(
                f"prompt {_pid_of(prompt)} ({shown!r}) has a second row; first seen in "
                f"{'row' if fa == fb else f'{fa} row'} {ra} (a wide file has one row per prompt)",
                file=fb,
                row=rb,
                field=self.files_col("prompt"),
            )
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW wide_long AS SELECT file, row, prompt, "
            f"NULL::VARCHAR AS prompt_id, unnest(range(len(responses))) AS sample_idx, "
            f"unnest(responses) AS response, unnest(rewards)::DOUBLE AS reward, "
            f"NULL::VARCHAR AS finish_reason FROM {view}"
        )
        return self._long("wide_long", "wide", None, {"prompt": self.files_col("prompt")})

    def files_col(self, key: str) -> str:
        return self.cols[key][0] if len(self.cols[key]) == 1 else key

    # -- prompts -----------------------------------------------------------------------------

    def _by_prompt(self, keys: pa.Array, view: str, fld: str) -> tuple[list[str], pa.Array]:
        def where(i: int, msg: str) -> InputError:
            at = first_row(self.con, view, "prompt_key = ?", [keys[i].as_py()])
            return InputError(msg, file=at[0], row=at[1], field=fld)

        return prompt_messages(keys, where)

    def _by_table(self, keys: pa.Array, table: Path, cols: dict) -> tuple[list[str], pa.Array]:
        t_ids, t_msgs = load_prompt_table(table)
        pos = {p: i for i, p in enumerate(t_ids)}
        ids = keys.cast(pa.string()).to_pylist()
        missing = [p for p in ids if p not in pos]
        if missing:
            file, row, pid = self.con.sql(
                "SELECT file, row, prompt_key FROM pool_keyed WHERE list_contains(?, prompt_key) "
                "ORDER BY file, row LIMIT 1",
                params=[missing],
            ).fetchall()[0]
            file, row = located(file, row)
            raise InputError(
                f"prompt id {pid} is not in the prompt table",
                file=file,
                row=row,
                field=cols.get("prompt_id", "prompt_id"),
            )
        return ids, t_msgs.take(pa.array([pos[p] for p in ids], pa.int64()))

    # -- the pool ----------------------------------------------------------------------------

    def _duplicate(self, view: str, key: str, pid, idx: int) -> None:
        (fa, ra), (fb, rb) = rows_of(
            self.con, view, f"{key} = ? AND sample_idx = ?", [pid, int(idx)]
        )[:2]
        shown = pid if isinstance(pid, str) and key == "prompt_id" else _pid_of(pid)
        raise InputError(
            f"duplicate (prompt_id, sample_idx) = ({shown}, {idx}); first seen in {fa} row {ra}",
            file=fb,
            row=rb,
            field="sample_idx",
        )

    def _assemble(self, ids, messages, keys, arrays: list, layout, view) -> Pool:
        """Sort by (prompt id, sample index) — several groups may be one prompt written in two
        forms — check each sample is there once, and keep the usable responses. ``arrays``:
        group, sample index, reward and drop code of every response (taken out of the list)."""
        group, idx, reward, code = arrays
        arrays.clear()
        ids_arr = np.array(ids, dtype=object)
        u_ids, g_code = np.unique(ids_arr, return_inverse=True)
        order = _block_order(g_code, group, idx)
        if order is not None:
            idx, reward, code, group = (a[order] for a in (idx, reward, code, group))
        p_code = g_code[group]
        dup = np.flatnonzero((p_code[1:] == p_code[:-1]) & (idx[1:] == idx[:-1]))
        if len(dup):
            self._duplicate(view, "prompt_key", keys[int(group[dup[0]])].as_py(), idx[dup[0]])
        counts = np.bincount(code, minlength=2 + len(RESPONSE_DROPS))
        dropped = {r: int(counts[1 + i]) for i, r in enumerate(RESPONSE_DROPS)}
        if not self.exclude_truncated:
            del dropped["truncated"]
        keep = None if counts[0] == len(code) else np.flatnonzero(code == 0)
        kept = (lambda a: a) if keep is None else (lambda a: a[keep])  # no copy if all usable
        n = np.bincount(kept(p_code), minlength=len(u_ids))
        first_group = np.zeros(len(u_ids), dtype=np.int64)
        first_group[g_code[::-1]] = np.arange(len(g_code))[::-1]
        trunc = np.stack([p_code[code == 3], idx[code == 3]], axis=1)
        idx = kept(idx)
        texts = SqlTexts(self.con, view, keys, kept(group), idx, g_code, trunc)
        return Pool(
            prompt_ids=u_ids,
            messages=messages.take(pa.array(first_group)),
            offsets=np.concatenate([[0], np.cumsum(n)]).astype(np.int64),
            sample_idx=idx,
            rewards=kept(reward),
            texts=texts,
            responses_in=int(len(code) - counts[-1]),
            dropped=dropped,
            layout=layout,
            source=self.text,
        )


def _block_order(g_code: np.ndarray, group: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """The permutation that puts the rows (in blocks by ``group``) in prompt order
    (``g_code[group]``) and sample order; None when they are. Whole blocks move when each
    prompt is one block already in sample order (the usual case); else a full sort."""
    n = len(group)
    if n < 2:
        return None
    lens = np.bincount(group, minlength=len(g_code))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    sorted_in = (group[1:] != group[:-1]) | (idx[1:] > idx[:-1])
    if len(np.unique(g_code)) == len(g_code) and sorted_in.all():
        by = np.argsort(g_code, kind="stable")
        if np.array_equal(by, np.arange(len(by))):
            return None
        new_starts = np.concatenate([[0], np.cumsum(lens[by])[:-1]])
        return np.repeat(starts[by] - new_starts, lens[by]) + np.arange(n)
    return np.lexsort((idx, g_code[group]))


def _pid_of(prompt) -> str:
    from sweetspot.ids import prompt_id, to_messages

    try:
        return prompt_id(to_messages(prompt))
    except ValueError:
        return str(prompt)


__all__ = ["FetchedTexts", "Pool", "SqlTexts", "TextSource", "load_pool"]
