"""The sample stage: n on-policy responses per prompt, written as resumable Parquet shards.

``from sweetspot.sampling import SampleConfig, run_sampling``; generation backends live in
``sweetspot.sampling.backends`` (``get_generator``). The stage itself is in
``sweetspot.sampling.stage``, its options in ``sweetspot.sampling.config``.
"""

from __future__ import annotations

from sweetspot.sampling.config import DEFAULT_SHARD_SIZE, PLAN_PARAMS, SampleConfig
from sweetspot.sampling.stage import (
    PLAN_FILE,
    SAMPLES_DIR,
    SAMPLES_SCHEMA,
    SampleWorker,
    WorkerFactory,
    run_sampling,
)

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "PLAN_FILE",
    "PLAN_PARAMS",
    "SAMPLES_DIR",
    "SAMPLES_SCHEMA",
    "SampleConfig",
    "SampleWorker",
    "WorkerFactory",
    "run_sampling",
]
