"""The sample stage: n on-policy responses per prompt, written as resumable Parquet shards.

``from sweetspot.sampling import SampleConfig, run_sampling``; generation backends live in
``sweetspot.sampling.backends`` (``get_generator``). The stage itself is in
``sweetspot.sampling.stage``, its options in ``sweetspot.sampling.config``. Names load lazily, so
the options import without pyarrow or any backend.
"""

from __future__ import annotations

from sweetspot.lazy import lazy_exports

_WHERE = {
    "DEFAULT_SHARD_SIZE": "sweetspot.sampling.config",
    "SampleConfig": "sweetspot.sampling.config",
    "PLAN_FILE": "sweetspot.sampling.stage",
    "SAMPLES_DIR": "sweetspot.sampling.stage",
    "SAMPLES_SCHEMA": "sweetspot.sampling.stage",
    "SampleWorker": "sweetspot.sampling.stage",
    "WorkerFactory": "sweetspot.sampling.stage",
    "run_sampling": "sweetspot.sampling.stage",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_exports(__name__, _WHERE)
