"""Several pairs per prompt (SPEC §2's baseline): the pairs of a list of strategies in one
training set, one row per pair, each with a ``pair_id``.

A combination is named by its strategies joined with ``+`` (``sweet-spot+conventional``); its
file sits beside theirs (``pairs/sweet-spot+conventional.parquet``), so training, the run's
manifest and the report treat it as one more strategy.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.io import read_table_file, write_table

SEPARATOR = "+"


def combo_name(names: list[str]) -> str:
    """The file name of a combination of strategies (their names, in order, joined by ``+``)."""
    return SEPARATOR.join(names)


def combine_pairs(folder: str | Path, names: list[str], fmt: str = "parquet") -> Path:
    """Concatenate the pair files of ``names`` in ``folder`` into ``<combo>.<fmt>``, adding
    ``pair_id`` = ``<prompt_id>/<strategy>`` (unique per row); returns its path."""
    folder = Path(folder)
    if len(names) < 2 or len(set(names)) != len(names):
        raise InputError(f"a combination needs two or more different strategies, got {names}")
    tables = []
    for name in names:
        path = folder / f"{name}.{fmt}"
        if not path.exists():
            raise InputError(f"no pairs of strategy {name!r} to combine", file=str(path))
        t = read_table_file(path)
        pair_id = pc.binary_join_element_wise(
            t.column("prompt_id"), pa.scalar(name, pa.string()), "/"
        )
        tables.append(t.append_column("pair_id", pair_id))
    combined = pa.concat_tables(tables, promote_options="default")
    from sweetspot.pairs.build import DICTIONARY_COLUMNS

    return write_table(combined, folder / f"{combo_name(names)}.{fmt}", fmt, DICTIONARY_COLUMNS)
