"""``train_dpo``: TRL's ``DPOTrainer`` on a pairs file, written atomically to an output folder."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from sweetspot.errors import ConfigError, InputError
from sweetspot.io import write_json_atomic
from sweetspot.manifest import library_versions
from sweetspot.quiet import quiet_hf, silence_tqdm
from sweetspot.training.config import TrainConfig
from sweetspot.training.data import load_pair_rows
from sweetspot.training.policy import is_adapter_dir, load_policy, load_tokenizer, model_ref

LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "train_summary.json"
ADAPTER_DIR = "adapter"
# The metrics copied into the summary from the last logged step.
KEY_METRICS = (
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "rewards/chosen",
    "rewards/rejected",
)


def resolve_precision(precision: str) -> str:
    """The precision actually used: ``auto`` is bf16 on a bf16-capable GPU and fp32 otherwise;
    bf16/fp16 without a GPU fall back to fp32 (emulated bf16 is ~3x slower on CPU)."""
    import torch

    gpu = torch.cuda.is_available()
    if precision == "auto":
        return "bf16" if gpu and torch.cuda.is_bf16_supported() else "fp32"
    if precision in ("bf16", "fp16") and not gpu:
        return "fp32"
    return precision


def _tmp_dir(out_dir: Path) -> Path:
    # Deterministic, so that every process of a distributed launch agrees on it.
    return out_dir.parent / f".tmp-{out_dir.name}"


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise InputError(
            "output folder exists and is not empty (use --force to move it aside)",
            file=str(out_dir),
        )


def _log_callback(log_path: Path, progress: bool):
    """A ``TrainerCallback`` appending each log row to ``log_path`` and driving a rich bar."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self._bar = None
            self._task = None

        def on_train_begin(self, args, state, control, **kwargs):
            if progress and state.is_world_process_zero:
                from sweetspot.progress import progress_bar

                self._bar = progress_bar(None, "{task.description}", title="[bold]DPO[/]")
                self._bar.start()
                self._task = self._bar.add_task("", total=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if self._bar is not None:
                self._bar.update(self._task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "epoch": state.epoch, **logs}
            self.rows.append(row)
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if self._bar is not None and "loss" in logs:
                desc = f"loss {logs['loss']:.4f}"
                if "rewards/margins" in logs:
                    desc += f"  margin {logs['rewards/margins']:.4f}"
                if "rewards/accuracies" in logs:
                    desc += f"  acc {logs['rewards/accuracies']:.2f}"
                self._bar.update(self._task, description=desc)

        def on_train_end(self, args, state, control, **kwargs):
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    return _Callback()


def _dpo_args(cfg: TrainConfig, precision: str, tmp: Path, on_cpu: bool):
    from trl import DPOConfig

    dtype = "bfloat16" if precision == "bf16" else "float32"
    return DPOConfig(
        output_dir=str(tmp / "trainer"),
        beta=cfg.beta,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        # transformers >= 5 (the floor in pyproject.toml) has no warmup_ratio: a warmup_steps
        # value below 1 is the ratio, ceil(ratio * total steps). tests/test_train.py checks the
        # scheduler's actual warmup against it.
        warmup_steps=cfg.warmup_ratio,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        loss_type=list(cfg.loss_type),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing and not on_cpu,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        save_strategy="no",
        dataloader_pin_memory=not on_cpu,
        report_to="none",
        disable_tqdm=True,
        model_init_kwargs={"dtype": dtype},
        trust_remote_code=cfg.trust_remote_code,
    )


def train_dpo(
    pairs_path: str | Path,
    model: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    ref_model: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` with DPO on the pairs at ``pairs_path`` and save the result to ``out_dir``.

    ``ref_model=None`` uses the starting policy as the reference (with LoRA: the model with its
    adapter disabled; full fine-tuning: a second copy loaded from ``model``); a path uses that
    model. ``out_dir`` receives the model (with LoRA and ``merge_lora``: the merged model, the
    adapter in ``out_dir/adapter``; without ``merge_lora``: the adapter) and tokenizer,
    ``train_log.jsonl``, ``train_config.json`` and ``train_summary.json``. Everything is built in
    a hidden temporary folder renamed onto ``out_dir`` at the end, so a killed run never leaves a
    folder that looks finished. Returns the summary dict.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    rows = load_pair_rows(pairs_path)
    # One rich bar replaces the per-library tqdm bars (loading, tokenizing, shard writing).
    with quiet_hf():
        return _train(rows, pairs_path, model, out_dir, cfg, ref_model, progress)


def _train(
    rows: list[dict[str, Any]],
    pairs_path: str | Path,
    model: str | Path,
    out_dir: Path,
    cfg: TrainConfig,
    ref_model: str | Path | None,
    progress: bool,
) -> dict[str, Any]:
    model_id = model_ref(model)
    ref_id = model_ref(ref_model) if ref_model is not None else None

    from datasets import Dataset
    from trl import DPOTrainer

    precision = resolve_precision(cfg.precision)
    import torch

    on_cpu = not torch.cuda.is_available()
    tmp = _tmp_dir(out_dir)
    # TRL 1.x still passes `gradient_checkpointing`, which transformers 5 renamed: not the user's
    # business, and it would print twice per run.
    warnings.filterwarnings(
        "ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning
    )
    args = _dpo_args(cfg, precision, tmp, on_cpu)
    is_main = args.process_index == 0
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    args.distributed_state.wait_for_everyone()

    try:
        tokenizer = load_tokenizer(model_id, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the model's tokenizer ({e})", file=model_id) from None
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the model's tokenizer has no chat template", file=model_id, field="model")

    dtype = args.model_init_kwargs["dtype"]
    # An adapter folder (a previous round trained without merge_lora) is merged into an instance;
    # a plain model goes to TRL by path, so TRL loads it (and its reference) the distributed way.
    policy: Any = model_id
    if is_adapter_dir(model_id):
        policy = load_policy(model_id, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    ref: Any = None
    if ref_id is not None:
        ref = load_policy(ref_id, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    elif cfg.lora is None and not isinstance(policy, str) and not cfg.precompute_ref_log_probs:
        ref = load_policy(model_id, dtype=dtype, trust_remote_code=cfg.trust_remote_code)

    peft_config = None
    if cfg.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )

    log_path = tmp / LOG_FILE
    callback = _log_callback(log_path, progress)
    started = time.monotonic()
    from transformers.trainer_callback import PrinterCallback

    # TRL draws its own "Computing reference log probs" bar while it builds the trainer (and
    # again when it trains): ours shows the progress
    with silence_tqdm("trl.trainer.dpo_trainer"):
        try:
            trainer = DPOTrainer(
                model=policy,
                ref_model=ref,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[callback],
            )
        except (ValueError, TypeError) as e:
            raise ConfigError(f"TRL rejected the training setup: {e}") from e
        trainer.remove_callback(PrinterCallback)  # our callback logs and shows progress instead
        result = trainer.train()
    runtime = time.monotonic() - started

    merged = False
    if cfg.lora is not None:
        trainer.save_model(str(tmp / ADAPTER_DIR) if cfg.merge_lora else str(tmp))
    else:
        trainer.save_model(str(tmp))
    trainer.accelerator.wait_for_everyone()
    if not is_main:
        return {}

    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    if cfg.lora is not None and cfg.merge_lora:
        base = load_policy(model_id, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
        from peft import PeftModel

        merged_model = PeftModel.from_pretrained(base, str(tmp / ADAPTER_DIR)).merge_and_unload()
        merged_model.save_pretrained(str(tmp))
        merged = True
    tokenizer.save_pretrained(str(tmp))

    last: dict[str, Any] = {}
    for row in callback.rows:
        if "loss" in row:
            last = row
    mean_loss = float(result.training_loss)
    summary = {
        "out_dir": str(out_dir),
        "model": model_id,
        "ref_model": ref_id
        or ("starting policy (adapter disabled)" if cfg.lora else "starting policy (copy)"),
        "pairs": str(pairs_path),
        "n_pairs": len(rows),
        "steps": int(trainer.state.global_step),
        # The two losses of a run, named for what they are (see docs/training.md):
        "train_loss_mean": mean_loss,  # mean over every step: transformers' `train_loss`
        "final_loss": float(last["loss"]) if "loss" in last else None,  # last logged step
        "final_step": int(last["step"]) if "step" in last else None,
        "final": {k: float(last[k]) for k in KEY_METRICS if k in last},
        "runtime_s": round(runtime, 2),
        "lora": cfg.lora is not None,
        "merged": merged,
        "precision": precision,
        "preset": cfg.preset,
    }
    resolved = {
        **cfg.model_dump(),
        "precision_effective": precision,
        "gradient_checkpointing_effective": args.gradient_checkpointing,
        "total_steps": int(trainer.state.max_steps),
        # what the scheduler used: ceil(warmup_ratio * total_steps), transformers' rule
        "warmup_steps_effective": int(args.get_warmup_steps(trainer.state.max_steps)),
        "model": model_id,
        "ref_model": ref_id,
        "pairs": str(Path(pairs_path).resolve()),
        "n_pairs": len(rows),
        "world_size": args.world_size,
        "global_batch": cfg.per_device_train_batch_size
        * cfg.gradient_accumulation_steps
        * args.world_size,
        "versions": library_versions(),
    }
    if not log_path.exists():
        log_path.touch()
    write_json_atomic(tmp / CONFIG_FILE, resolved)
    write_json_atomic(tmp / SUMMARY_FILE, summary)
    _publish(tmp, out_dir)
    return summary


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder onto ``out_dir``; an old one there (``overwrite``) is
    moved aside into ``superseded/`` beside it, never deleted."""
    if out_dir.exists():
        from sweetspot.aside import move_aside

        move_aside([out_dir], out_dir.parent, out_dir.name)
    os.replace(tmp, out_dir)
