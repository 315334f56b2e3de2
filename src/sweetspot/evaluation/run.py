"""``evaluate``: policy vs baseline on held-out prompts, judged by a reward."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sweetspot.errors import InputError
from sweetspot.evaluation.alpaca import read_reference_outputs, write_model_outputs
from sweetspot.evaluation.config import LLM_JUDGE, EvalConfig
from sweetspot.evaluation.judge_prompt import JudgeTemplate
from sweetspot.evaluation.judged import Judged
from sweetspot.evaluation.outputs import cache_entry, generate_cached, generation_key
from sweetspot.evaluation.winrate import preferences, summarize
from sweetspot.ids import prompt_id as make_prompt_id
from sweetspot.ids import to_messages
from sweetspot.io import atomic_path, read_table_file, write_json_atomic
from sweetspot.quiet import quiet_hf

OUTPUTS_FILE = "outputs.jsonl"
SUMMARY_FILE = "summary.json"
ALPACA_FILE = "model_outputs.json"
POLICY_OUTPUTS_DIR = "policy-outputs"  # in the eval folder: the policy's responses, resumable
BASELINE_OUTPUTS_DIR = "baseline-outputs"  # default baseline cache, in the eval folder
JUDGMENTS_DIR = "judgments"  # default judgment cache of the LLM judge, in the eval folder


def instruction_of(messages: list[dict[str, str]]) -> str:
    """The instruction text of a prompt: its last user message."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"]


def load_eval_prompts(prompts: Any, cfg: EvalConfig) -> list[tuple[str, list[dict[str, str]]]]:
    """``(prompt_id, messages)`` of the prompts to evaluate, in order.

    ``prompts`` is a path (a ``prompts.parquet`` with prompt_id/messages, or any file that
    ``sweetspot.prompts.load_prompts`` reads), an Arrow table with those columns, or a list of
    prompts (strings or message lists). ``cfg.split`` and ``cfg.max_prompts`` then apply.
    """
    where: str | None = None
    if isinstance(prompts, (str, Path)):
        path = Path(prompts)
        where = str(path)
        if not path.exists():
            raise InputError("no such prompts file", file=where)
        table = read_table_file(path) if path.is_file() else None
        if table is None or not {"prompt_id", "messages"} <= set(table.column_names):
            from sweetspot.prompts import load_prompts

            # A raw prompt file: load_prompts selects the split from the rows' own field.
            table = load_prompts(path, split=cfg.split)
    elif isinstance(prompts, pa.Table):
        table = prompts
    else:
        msgs = [to_messages(p) for p in prompts]
        table = pa.table({"prompt_id": [make_prompt_id(m) for m in msgs], "messages": msgs})
    if cfg.split is not None:
        if "split" not in table.column_names:
            raise InputError(
                f"prompts have no 'split' column to select {cfg.split!r} from",
                file=where,
                field="split",
            )
        keep = [s == cfg.split for s in table.column("split").to_pylist()]
        table = table.filter(pa.array(keep))
    rows = list(zip(table.column("prompt_id").to_pylist(), table.column("messages").to_pylist()))
    if cfg.max_prompts is not None:
        rows = rows[: cfg.max_prompts]
    if not rows:
        raise InputError("no prompts to evaluate")
    return [
        (pid, [{"role": m["role"], "content": m["content"]} for m in msgs]) for pid, msgs in rows
    ]


def is_outputs_file(baseline: str | Path) -> bool:
    """A baseline given as a file of reference outputs (JSON/JSONL) rather than a model."""
    p = Path(baseline)
    return p.is_file() and p.suffix in (".json", ".jsonl")


def _match_references(
    path: Path, prompts: list[tuple[str, list[dict[str, str]]]]
) -> tuple[list[str | None], str | None]:
    refs = read_reference_outputs(path)
    by_id = {r["prompt_id"]: r for r in refs if r["prompt_id"] is not None}
    by_text = {r["instruction"]: r for r in refs if r["instruction"] is not None}
    texts: list[str | None] = []
    for pid, msgs in prompts:
        row = by_id.get(pid) or by_text.get(instruction_of(msgs))
        texts.append(row["output"] if row else None)
    generators = {r["generator"] for r in refs if r["generator"]}
    return texts, (generators.pop() if len(generators) == 1 else None)


def _model_path(path: str, workdir: Path) -> str:
    """A folder the generator can load: an adapter folder is merged into ``workdir`` first."""
    from sweetspot.training.policy import is_adapter_dir, load_policy, load_tokenizer, model_ref

    if not is_adapter_dir(path):
        return model_ref(path)
    with quiet_hf():
        load_policy(path, dtype="float32").save_pretrained(str(workdir))
        load_tokenizer(path).save_pretrained(str(workdir))
    return str(workdir)


def _judge(cfg: EvalConfig):
    from sweetspot.scoring.backends import get_scorer

    opts = dict(cfg.judge_options)
    if cfg.judge_model is not None:
        opts["model"] = cfg.judge_model
    return get_scorer(cfg.judge, **opts)


def _same_reward(cfg: EvalConfig, judge_id: str) -> bool:
    if not cfg.train_reward:
        return False
    names = {judge_id, cfg.judge, cfg.judge_model}
    return cfg.train_reward in names or cfg.train_reward.split("@")[0] in names


def evaluate(
    policy: str | Path,
    baseline: str | Path,
    prompts: Any,
    out_dir: str | Path,
    cfg: EvalConfig,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Compare ``policy`` with ``baseline`` (a model, or a JSON/JSONL file of reference outputs)
    on held-out ``prompts``, judged by the reward ``cfg.judge``.

    Writes ``out_dir/outputs.jsonl`` (one row per prompt: both responses, rewards,
    preference, lengths), ``out_dir/summary.json`` (win rate with its Wilson 95% interval,
    the length-controlled win rate of AlpacaEval 2's minimal GLM, mean lengths, judge) and, when
    asked, ``out_dir/model_outputs.json`` in AlpacaEval's format. Returns the summary.

    Responses are generated in shards that a rerun reuses (``sweetspot.evaluation.outputs``):
    the policy's in ``out_dir/policy-outputs/<key>/``, the baseline's in
    ``cfg.baseline_cache/<key>/`` (default ``out_dir/baseline-outputs/``), keyed by the
    model, the prompts and the generation settings. A killed evaluation resumes where it
    stopped; a baseline already generated with the same settings is not generated again.
    """
    eval_dir = Path(out_dir)
    items = load_eval_prompts(prompts, cfg)
    from_file = is_outputs_file(baseline)
    if not from_file and Path(str(baseline)).suffix in (".json", ".jsonl"):
        raise InputError("no such reference outputs file", file=str(baseline), field="baseline")
    template = _judge_check(cfg)

    policy_name = cfg.policy_name or Path(str(policy)).name or str(policy)
    with _Bar(progress) as bar:
        return _evaluate(
            policy, baseline, items, eval_dir, cfg, policy_name, from_file, template, bar
        )


def _evaluate(
    policy: str | Path,
    baseline: str | Path,
    items: list[tuple[str, list[dict[str, str]]]],
    eval_dir: Path,
    cfg: EvalConfig,
    policy_name: str,
    from_file: bool,
    template: JudgeTemplate | None,
    bar: _Bar,
) -> dict[str, Any]:
    from sweetspot.sampling.seeds import sample_seed

    messages = [m for _, m in items]
    pids = [pid for pid, _ in items]
    # Policy and baseline share each prompt's seed (common random numbers).
    seeds = [sample_seed(cfg.seed, pid, 0) for pid in pids]
    if from_file:  # match before generating, so a wrong file fails fast
        ref_texts, ref_generator = _match_references(Path(baseline), items)
        missing = sum(t is None for t in ref_texts)
        if missing == len(items):
            raise InputError(
                "no reference output matches any prompt (by prompt_id or instruction)",
                file=str(baseline),
            )
    outputs_info: dict[str, Any] = {}

    def generate(side: str, model: str, root: Path, label: str) -> list[dict[str, Any]]:
        out, outputs_info[side] = _generate(model, items, seeds, cfg, root, eval_dir, bar, label)
        return out

    policy_out = generate(
        "policy", str(policy), eval_dir / POLICY_OUTPUTS_DIR, f"policy {policy_name}"
    )

    if from_file:
        baseline_name = ref_generator or Path(baseline).stem
        keep = [i for i, t in enumerate(ref_texts) if t is not None]
        baseline_texts = [ref_texts[i] for i in keep]
        baseline_tokens: list[int | None] = [None] * len(keep)
        baseline_finish: list[str | None] = [None] * len(keep)
    else:
        missing = 0
        baseline_name = Path(str(baseline)).name or str(baseline)
        root = Path(cfg.baseline_cache) if cfg.baseline_cache else eval_dir / BASELINE_OUTPUTS_DIR
        base_out = generate("baseline", str(baseline), root, f"baseline {baseline_name}")
        keep = list(range(len(items)))
        baseline_texts = [c["text"] for c in base_out]
        baseline_tokens = [c["n_tokens"] for c in base_out]
        baseline_finish = [c["finish_reason"] for c in base_out]

    judged_msgs = [messages[i] for i in keep]
    policy_texts = [policy_out[i]["text"] for i in keep]
    if template is not None:
        from sweetspot.evaluation.llm_judge import judge_pairs

        root = Path(cfg.judge_cache) if cfg.judge_cache else eval_dir / JUDGMENTS_DIR
        verdict = judge_pairs(
            cfg,
            template,
            [pids[i] for i in keep],
            [instruction_of(m) for m in judged_msgs],
            policy_texts,
            baseline_texts,
            root,
            bar,
        )
    else:
        verdict = _judge_by_reward(cfg, judged_msgs, policy_texts, baseline_texts, bar)
    finite = np.isfinite(verdict.prefs)
    if not finite.any():
        raise InputError("the judge gave no verdict on any pair")
    prefs = verdict.prefs[finite]
    len_p = np.array([len(t) for t in policy_texts], dtype=np.float64)
    len_b = np.array([len(t) for t in baseline_texts], dtype=np.float64)
    stats = summarize(prefs, len_p[finite], len_b[finite], n_boot=cfg.bootstrap, seed=cfg.seed)

    judge_id = verdict.judge_id
    same = _same_reward(cfg, judge_id)
    rows = []
    for j, i in enumerate(keep):
        pid, msgs = items[i]
        c = policy_out[i]
        rows.append(
            {
                "prompt_id": pid,
                "instruction": instruction_of(msgs),
                "policy_output": c["text"],
                "baseline_output": baseline_texts[j],
                **verdict.rows[j],
                "preference": float(verdict.prefs[j]) if finite[j] else None,
                "policy_len": len(c["text"]),
                "baseline_len": len(baseline_texts[j]),
                "policy_n_tokens": c["n_tokens"],
                "baseline_n_tokens": baseline_tokens[j],
                "policy_finish_reason": c["finish_reason"],
                "baseline_finish_reason": baseline_finish[j],
            }
        )
    tokens_b = [t for t in baseline_tokens if t is not None]
    summary: dict[str, Any] = {
        "policy": str(policy),
        "policy_name": policy_name,
        "baseline": str(baseline),
        "baseline_name": baseline_name,
        "baseline_kind": "reference outputs" if from_file else "model",
        "judge": judge_id,
        "judge_kind": cfg.judge,
        "train_reward": cfg.train_reward,
        "judge_is_train_reward": same,
        "note": _note(cfg, judge_id, same),
        "n_prompts": len(items),
        "n_missing_reference": missing,
        "n_unscored": int((~finite).sum()),
        **stats,
        **verdict.summary,
        "mean_len_policy": float(len_p.mean()),
        "mean_len_baseline": float(len_b.mean()),
        "mean_tokens_policy": float(np.mean([policy_out[i]["n_tokens"] for i in keep])),
        "mean_tokens_baseline": float(np.mean(tokens_b)) if tokens_b else None,
        "length_unit": "characters",
        "generation": {
            "backend": cfg.backend,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_new_tokens": cfg.max_new_tokens,
            "seed": cfg.seed,
        },
        "outputs": outputs_info,
        "config": cfg.model_dump(),
    }
    with atomic_path(eval_dir / OUTPUTS_FILE) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if cfg.alpaca_eval_export:
        path = write_model_outputs(
            eval_dir / ALPACA_FILE,
            [instruction_of(m) for m in messages],
            [c["text"] for c in policy_out],
            policy_name,
        )
        summary["alpaca_eval_export"] = str(path)
    write_json_atomic(eval_dir / SUMMARY_FILE, summary)
    return summary


def _generate(
    model: str,
    items: list[tuple[str, list[dict[str, str]]]],
    seeds: list[int],
    cfg: EvalConfig,
    root: Path,
    workdir: Path,
    bar: _Bar,
    label: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``model``'s responses to ``items`` from (or into) its entry of the cache ``root``, and
    where they are with how many were generated now."""
    pids = [pid for pid, _ in items]
    key = generation_key(model, pids, cfg)
    folder = cache_entry(root, key)
    work = workdir / ".merged-model"
    bar.phase(label, len(items))
    try:
        out, generated = generate_cached(
            lambda: _model_path(model, work), items, seeds, cfg, folder, key, bar.advance
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, {"dir": str(folder), "generated": generated, "reused": len(items) - generated}


def generate_baseline(
    baseline: str | Path,
    prompts: Any,
    cache_root: str | Path,
    cfg: EvalConfig,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate the baseline's responses to the held-out ``prompts`` into the output cache
    ``cache_root``, once, before any evaluation reads them (``evaluate`` with the same
    ``cfg`` and ``baseline_cache=cache_root`` then generates no baseline response). A baseline
    given as a file of reference outputs needs nothing. Returns what it did."""
    from sweetspot.sampling.seeds import sample_seed

    items = load_eval_prompts(prompts, cfg)
    if is_outputs_file(baseline):
        return {"n_prompts": len(items), "baseline_kind": "reference outputs"}
    seeds = [sample_seed(cfg.seed, pid, 0) for pid, _ in items]
    root = Path(cache_root)
    name = Path(str(baseline)).name or str(baseline)
    with _Bar(progress) as bar:
        _, info = _generate(str(baseline), items, seeds, cfg, root, root, bar, f"baseline {name}")
    return {"n_prompts": len(items), **info}


def _judge_by_reward(
    cfg: EvalConfig,
    messages: list[list[dict[str, str]]],
    policy_texts: list[str],
    baseline_texts: list[str],
    bar: _Bar,
) -> Judged:
    """Score each response alone with the reward judge; the higher reward wins."""
    bar.phase(f"judge {cfg.judge}", 2)
    with quiet_hf():
        scorer = _judge(cfg)
        r_policy = np.asarray(scorer.score(messages, policy_texts), dtype=np.float64)
        bar.advance(1)
        r_base = np.asarray(scorer.score(messages, baseline_texts), dtype=np.float64)
        bar.advance(1)
    finite = np.isfinite(r_policy) & np.isfinite(r_base)
    prefs = np.full(len(policy_texts), np.nan)
    prefs[finite] = preferences(r_policy[finite], r_base[finite], cfg.tie_epsilon)
    rows = [
        {"policy_reward": float(a), "baseline_reward": float(b)}
        for a, b in zip(r_policy, r_base, strict=True)
    ]
    return Judged(prefs, getattr(scorer, "model_id", cfg.judge), rows)


def _judge_check(cfg: EvalConfig) -> JudgeTemplate | None:
    """Fail on a bad judge before any generation: an unknown reward kind; for the LLM judge,
    its settings, its template and its server (returns the loaded template)."""
    if cfg.judge == LLM_JUDGE:
        from sweetspot.evaluation.llm_judge import check_llm_judge

        return check_llm_judge(cfg)
    from sweetspot.scoring.backends import scorer_class

    scorer_class(cfg.judge)
    return None


def _note(cfg: EvalConfig, judge_id: str, same: bool) -> str:
    if cfg.judge == LLM_JUDGE:
        return (
            f"Pairwise LLM judge {judge_id}: each prompt judged in both orders, averaged. Not "
            "AlpacaEval 2 unless the judge, its template and the 805 instructions are theirs; "
            "export the outputs (--alpaca-eval-export) for the real benchmark."
        )
    if same:
        return (
            f"The judge ({judge_id}) is the reward the training pairs were built with: this win "
            "rate measures how well the policy optimised that reward, not response quality."
        )
    return (
        f"Proxy evaluation: win rate as judged by the reward {judge_id}, not by AlpacaEval's "
        "GPT-4 annotator; export the outputs (--alpaca-eval-export) for the real benchmark."
    )


class _Bar:
    """A rich progress bar over the phases of an evaluation (policy, baseline, judge); a no-op
    when disabled. The sampling backends draw no live display of their own."""

    def __init__(self, enabled: bool) -> None:
        self._progress = None
        self._task = None
        if enabled:
            from sweetspot.progress import progress_bar

            self._progress = progress_bar(
                title="[bold]evaluate[/] {task.description}", remaining=False
            )

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, description: str, total: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)
