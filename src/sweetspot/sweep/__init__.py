"""``sweetspot sweep``: the paper's experiment on your own policy and reward.

How do DPO results change with the pair strategy (any strategies, the 21-cell grid of the seven
positions included) and with the number of samples per prompt n? The sweep samples once at the
largest n and scores once (the ordinary, resumable stages); the pool of a smaller n is the first n
samples of each prompt - with per-sample seeds exactly what a run with that n would have drawn.
Then, per n, one pair stage builds every strategy's pairs from that pool, and per cell
(n, strategy) DPO trains from the same starting policy with the same recipe and seed and is judged
against the same baseline outputs (a stage of their own, generated once before any evaluation) on
the same held-out prompts. Folders: ``sweetspot.layout``.

Modules: :mod:`~sweetspot.sweep.config` (the ``sweep`` section), :mod:`~sweetspot.sweep.run`
(stages and cells, local or Ray), :mod:`~sweetspot.sweep.results` (``sweep.csv``, tables).
"""

from __future__ import annotations

from sweetspot.lazy import lazy_exports

_WHERE = {
    "SweepCell": "sweetspot.sweep.config",
    "SweepConfig": "sweetspot.sweep.config",
    "SweepSettings": "sweetspot.sweep.config",
    "load_sweep_config": "sweetspot.sweep.config",
    "CellsFailed": "sweetspot.sweep.run",
    "run_sweep": "sweetspot.sweep.run",
    "SWEEP_CSV": "sweetspot.sweep.results",
    "SWEEP_JSON": "sweetspot.sweep.results",
    "collect_results": "sweetspot.sweep.results",
    "drift_table": "sweetspot.sweep.results",
    "results_table": "sweetspot.sweep.results",
    "tokens_by_n": "sweetspot.sweep.results",
    "write_results": "sweetspot.sweep.results",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_exports(__name__, _WHERE)
