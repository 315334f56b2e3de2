"""Running a sweep: its stages from the same builder as ``sweetspot run``, its cells here or as
Ray tasks.

Order: the held-out prompts and the pool (prompts, sampling at the largest n, scoring), then per
n one pair stage, then the baseline's responses (once, before any evaluation), then the cells'
trainings and their evaluations. Cells whose training pairs are identical by content (at a small
n, conventional and sweet-spot often pick the same responses on every prompt) train and evaluate
once; the others share that result. Every cell is recorded in the manifest as it finishes,
whatever its neighbours do: on Ray a failed cell is named, the pending ones are cancelled, and the
sweep ends with :class:`CellsFailed`; a rerun redoes only the failed and unstarted cells.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from sweetspot import stages as specs
from sweetspot.errors import InputError, StageFailed, worker_error
from sweetspot.graph import StageBuilder, round_names
from sweetspot.layout import Layout
from sweetspot.manifest import Manifest, Stage, StageResult, finish_stage, prepare_stage
from sweetspot.runner import execute, execute_one
from sweetspot.sweep.config import SweepConfig


class CellsFailed(StageFailed):
    """Cells of a sweep failed; the finished ones are recorded and a rerun redoes the rest."""


def pool_stages(build: StageBuilder, with_eval: bool) -> list[Stage]:
    """Prompts, sampling at the largest n, scoring: once for every cell."""
    layout = build.layout
    names = round_names(layout.name(layout.pool))
    out = [build.eval_prompts()] if with_eval else []
    return out + [
        build.prompts(names["prompts"], layout.pool),
        build.sample(names["sample"], layout.pool, build.policy0, names, []),
        build.score(names["score"], layout.pool, names),
    ]


def pair_stages(build: StageBuilder, cfg: SweepConfig) -> list[Stage]:
    """Per n, every strategy's pairs from the first n samples of each prompt."""
    layout = build.layout
    base = cfg.pairs.pair_config()
    names = round_names(layout.name(layout.pool))
    out = []
    for n in cfg.sweep.n:
        pc = base.model_copy(update={"strategies": cfg.sweep.pair_specs(), "max_samples": n})
        folder = layout.n(n)
        out.append(
            build.pair(
                f"{layout.name(folder)}/pair",
                layout.pool,
                specs.PAIR.path(folder, "pairs_dir"),
                pc,
                names,
                combos=cfg.sweep.combos(),
            )
        )
    return out


def pairs_file(cfg: SweepConfig, layout: Layout, n: int, strategy: str) -> Path:
    return specs.PAIR.path(layout.n(n), "pairs", strategy=strategy, format=cfg.pairs.format)


def share_identical(
    cfg: SweepConfig, layout: Layout, cells: list[tuple[int, str]]
) -> dict[tuple[int, str], tuple[int, str]]:
    """Cells whose training pairs equal an earlier cell's by content -> that cell."""
    from sweetspot.training.data import pairs_digest

    first: dict[str, tuple[int, str]] = {}
    shares = {}
    for cell in cells:
        path = pairs_file(cfg, layout, *cell)
        if not path.exists():
            continue
        digest = pairs_digest(path)
        if digest in first:
            shares[cell] = first[digest]
        else:
            first[digest] = cell
    return shares


def cell_stages(
    build: StageBuilder, cfg: SweepConfig, cells: list[tuple[int, str]]
) -> tuple[list[Stage], list[Stage]]:
    """(training stages, evaluation stages) of ``cells``."""
    layout = build.layout
    trains, evals = [], []
    for n, s in cells:
        folder, n_dir = layout.cell(n, s), layout.n(n)
        pairs = pairs_file(cfg, layout, n, s)
        name = layout.name(folder)
        model = specs.TRAIN.path(folder, "model")
        trains.append(
            build.train(
                f"{name}/train", pairs, build.policy0, model, {"pair": f"{layout.name(n_dir)}/pair"}
            )
        )
        evals.append(
            build.evaluate(f"{name}/evaluate", model, specs.EVALUATE.path(folder, "eval"),
                           {"train": f"{name}/train"})
        )  # fmt: skip
    return trains, evals


def run_cells(
    wave: list[Stage],
    manifest: Manifest,
    console: Console,
    cfg: SweepConfig,
    force: bool = False,
) -> list[StageResult]:
    """Run one wave of cells (their trainings, or their evaluations): one after another here,
    or as parallel Ray tasks. Raises :class:`CellsFailed` naming the cells that failed, after
    recording every cell that finished."""
    if cfg.sweep.executor == "ray" and len(wave) > 1:
        return _ray_wave(wave, manifest, console, cfg, force)
    results = []
    for stage in wave:
        try:
            results.append(execute_one(stage, manifest, console, force))
        except KeyboardInterrupt:
            raise
        except Exception as e:
            if isinstance(e, InputError):
                raise
            raise CellsFailed(
                f"cell {stage.name} failed ({type(e).__name__}: {e}); finished cells are "
                "recorded: rerun the same command to redo the failed and unstarted ones"
            ) from e
    return results


def _ray_wave(
    wave: list[Stage], manifest: Manifest, console: Console, cfg: SweepConfig, force: bool
) -> list[StageResult]:
    from sweetspot.deps import require

    require("ray", what="sweep.executor ray")
    import ray

    sw = cfg.sweep
    started = False
    if not ray.is_initialized():
        if sw.ray_address:
            ray.init(address=sw.ray_address, log_to_driver=True)
        else:
            ray.init(include_dashboard=False, log_to_driver=True)
        started = True
    task = ray.remote(num_cpus=sw.cpus_per_cell, num_gpus=sw.gpus_per_cell or None)(_call)
    out: list[StageResult] = []
    pending: dict[Any, Any] = {}
    cancelled: set[Any] = set()
    failed: list[str] = []
    try:
        for stage in wave:
            prep = prepare_stage(stage, manifest, force)
            if prep.result is not None:
                out.append(prep.result)
                console.print(f"  [dim]{stage.name}: skipped (unchanged)[/]")
                continue
            pending[task.remote(stage.fn)] = prep
            console.print(f"  {stage.name}: submitted ({prep.reason})", highlight=False)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            prep = pending.pop(done[0])
            try:
                summary = ray.get(done[0])
            except Exception as e:  # the cell's own error (wrapped by Ray), or its cancellation
                if done[0] in cancelled:
                    continue  # recorded as running: a rerun redoes it
                failed.append(f"{prep.stage.name} ({worker_error(e)})")
                console.print(
                    f"  [red]{prep.stage.name}: failed[/]: {worker_error(e)}", highlight=False
                )
                cancelled |= _cancel(ray, pending, console)
                continue
            res = finish_stage(prep, manifest, summary)  # recorded now, whatever comes next
            console.print(f"  [green]{res.name}: done[/] in {res.seconds:.1f}s")
            out.append(res)
    except BaseException:  # Ctrl-C, SIGTERM: stop what is still running
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    if failed:
        raise CellsFailed(
            f"{len(failed)} cell(s) failed: {'; '.join(failed)}. Finished cells are recorded; "
            "rerun the same command to redo the failed and unstarted ones"
        )
    return out


def _cancel(ray: Any, pending: dict, console: Console) -> set[Any]:
    """Cancel the tasks not yet finished; one that finishes meanwhile still counts (the caller's
    loop records it when its ``ray.get`` succeeds)."""
    out = set()
    for ref, prep in list(pending.items()):
        ready, _ = ray.wait([ref], timeout=0)
        if ready:
            continue
        ray.cancel(ref, force=False)
        out.add(ref)
        console.print(f"  [yellow]{prep.stage.name}: cancelled[/]", highlight=False)
    return out


def _call(fn: Callable[[], dict]) -> dict:  # a Ray task: run one stage's function where placed
    return fn() or {}


def run_sweep(
    config: str | Path | SweepConfig,
    run_dir: str | Path,
    *,
    fns: Mapping[str, Callable[..., Any]] | None = None,
    console: Console | None = None,
    force: bool = False,
    stats_only: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Run (or resume) the sweep of ``config`` in ``run_dir``; return one row per cell."""
    from sweetspot.config import dump_config
    from sweetspot.io import write_text_atomic
    from sweetspot.lock import folder_lock
    from sweetspot.progress import silenced
    from sweetspot.sweep.config import load_sweep_config
    from sweetspot.sweep.results import collect_results, drift_table, results_table, write_results

    cfg = config if isinstance(config, SweepConfig) else load_sweep_config(config)
    layout = Layout(Path(run_dir))
    console = console or Console()
    t0 = time.perf_counter()
    with folder_lock(layout.root, "sweetspot sweep"), silenced(not progress):
        write_text_atomic(layout.config, dump_config(cfg))
        build = StageBuilder(cfg, layout, fns)
        manifest = Manifest(layout.root)
        cells = [] if stats_only else cfg.trained_cells()
        execute([*pool_stages(build, bool(cells)), *pair_stages(build, cfg)], manifest, console,
                force)  # fmt: skip
        shares = share_identical(cfg, layout, cells)
        for cell, same in shares.items():
            console.print(f"  n-{cell[0]}/{cell[1]}: same pairs as n-{same[0]}/{same[1]}: "
                          "shares its training and evaluation", highlight=False)  # fmt: skip
        own = [c for c in cells if c not in shares]
        trains, evals = cell_stages(build, cfg, own)
        if evals:
            execute([build.baseline()], manifest, console, force)
        for wave in (trains, evals):
            run_cells(wave, manifest, console, cfg, force)
        rows = collect_results(cfg, layout, set(cells), shares)
        csv_path, _ = write_results(layout.root, rows, cfg)
    from sweetspot.tables import print_table

    print_table(console, results_table(rows), whole=(0, 1))  # n and strategy never cut
    print_table(console, drift_table(rows))
    console.print(f"results: {csv_path} ({time.perf_counter() - t0:.0f} s)", highlight=False)
    return rows
