"""Issue 15's premise, as a script: max/min and max/μ−2σ pairs of a scored pool in DuckDB SQL.

Per prompt: mean and population σ, ``arg_min``/``arg_max`` with ties to the lower sample index
for each pick, the picked texts fetched by a join, each dataset written with ``COPY ... TO``
Parquet. It has none of the stage's provenance columns, drop reasons, diagnostics, empty-response
or identical-text checks: what an engine spends on the bare picks of the same pool, run by
``bench_scale.py --duckdb`` in the same run as the stage and the read.

    pip install duckdb
    python benchmarks/duckdb_pairs.py --rewards 'POOL/scores/*.parquet' \\
        --texts 'POOL/samples/*.parquet' --key prompt_id --text-col text --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

PICKS = """
CREATE TEMP TABLE picks AS
WITH r AS (SELECT {key} AS k, sample_idx AS i, reward FROM read_parquet({rewards})
           WHERE isfinite(reward)),
s AS (SELECT k, avg(reward) - 2 * stddev_pop(reward) AS target, stddev_pop(reward) AS sd
      FROM r GROUP BY k)
SELECT k, any_value(sd) AS sd,
  arg_max(i, (reward, -i)) AS top,
  arg_min(i, (abs(reward - target), i)) AS sweet,
  arg_min(i, (reward, i)) AS bottom
FROM r JOIN s USING (k) GROUP BY k
"""
TEXTS = """
CREATE TEMP TABLE texts AS
SELECT t.{key} AS k, t.sample_idx AS i, t.{text} AS text FROM read_parquet({texts}) t
SEMI JOIN (SELECT k, top AS i FROM picks UNION ALL SELECT k, sweet FROM picks
           UNION ALL SELECT k, bottom FROM picks) p ON t.{key} = p.k AND t.sample_idx = p.i
"""
WRITE = """
COPY (SELECT p.k AS {key}, p.top AS chosen_idx, p.{rejected} AS rejected_idx,
             c.text AS chosen, r.text AS rejected
      FROM picks p JOIN texts c ON c.k = p.k AND c.i = p.top
                   JOIN texts r ON r.k = p.k AND r.i = p.{rejected}
      WHERE p.sd > 0 AND p.top <> p.{rejected}) TO '{out}' (FORMAT parquet)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rewards", required=True, help="glob of the files with key, idx, reward")
    ap.add_argument("--texts", required=True, help="glob of the files with key, idx, text")
    ap.add_argument("--key", default="prompt", help="the prompt column (prompt or prompt_id)")
    ap.add_argument("--text-col", default="response")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(PICKS.format(key=args.key, rewards=repr(args.rewards)))
    con.execute(TEXTS.format(key=args.key, text=args.text_col, texts=repr(args.texts)))
    for name, rejected in (("sweet-spot", "sweet"), ("conventional", "bottom")):
        out = args.out / f"{name}.parquet"
        con.execute(WRITE.format(key=args.key, rejected=rejected, out=out))


if __name__ == "__main__":
    main()
