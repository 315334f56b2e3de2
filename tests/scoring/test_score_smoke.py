"""Smoke test: the relevance reward on two texts of the kind SmolLM2-135M-Instruct writes,
through the whole score stage (stage folder -> scores shard)."""

from __future__ import annotations

import pyarrow.parquet as pq
from test_score_helpers import write_prompts, write_samples

from sweetspot.scoring import ScoreConfig, run_scoring

# Written in the style of SmolLM2-135M-Instruct's answers to the first prompt (plain strings:
# nothing is generated here).
ON_TOPIC = (
    "The capital of France is Paris. Paris is known for its art, culture and history, and it "
    "is home to famous landmarks such as the Eiffel Tower and the Louvre Museum."
)
OFF_TOPIC = (
    "Here is a short poem: The waves roll in beneath the evening light, the gulls call out "
    "and vanish into night."
)


def test_relevance_scores_smollm2_texts_end_to_end(tmp_path):
    stage = tmp_path / "stage"
    ids = write_prompts(stage)
    write_samples(stage, 0, [(ids[0], 0, ON_TOPIC), (ids[0], 1, OFF_TOPIC)])
    summary = run_scoring(stage, ScoreConfig(reward="relevance"), show_progress=False)
    assert summary["scored"] == 2 and summary["truncated"] == 0
    t = pq.read_table(stage / "scores" / "part-00000.parquet")
    on, off = t["reward"].to_pylist()
    assert on > 0.5 and off < 0.3 and on - off > 0.3
    assert set(t["reward_model"].to_pylist()) == {"sentence-transformers/all-MiniLM-L6-v2"}
