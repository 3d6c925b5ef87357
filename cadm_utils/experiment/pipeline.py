"""Runs the cells of a profile: check everything first, then pretrain the experts, distil
the sets and evaluate, in parallel where the profile asks for workers or a launcher."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..method.mechanism import interpolation_agreement
from ..method.models import resolve_stem
from ..method.synthetic import check_ipc
from ..profiles import load_profile
from ..runtime import to_float
from .cells import Cell, plan_cells
from .cost import cell_evaluation_work, distill_work, expert_work
from .parallel import run_jobs, worker_cache
from .planning import (ExpertKey, distilled_cells, expert_path, missing_products,
                       needed_experts)
from .evaluation import evaluation_config, run_cell
from .products import distill_row, expert, expert_with_heads, new_model
from .records import load_records, seeds_to_run
from .runner import Runner
from .store import short_hash


def validate_cells(runner: Runner, cells: list[Cell]) -> None:
    """Everything that can fail before long work: data, targets, IPC, settings."""
    runner.workers  # raises on a bad number
    resolve_stem(runner.sections.model.stem, 64)
    evaluation_config(runner)
    for cell in cells:
        task = runner.task(cell.dataset, cell.target)
        if cell.ipc:
            config = runner.for_cell(cell).store.distill_config(cell.ipc, cell.method)
            check_ipc(task.train, task.source_domains, cell.ipc, config.factor)


def open_run(profile_name, data_root=None, datasets=None, targets=None, methods=None, ipcs=None,
             stages=None, results_dir=None, run_dir=None, progress: bool = True):
    """Load the profile, plan the chosen cells and check them all before any long work."""
    profile = load_profile(profile_name)
    cells = plan_cells(profile, datasets, targets, methods, ipcs, stages)
    if not cells:
        raise ConfigError("no cell matches the chosen data sets, targets, methods and IPCs")
    runner = Runner(profile, data_root, results_dir, run_dir, progress=progress)
    validate_cells(runner, cells)
    return runner, cells


def cells_with_work(runner: Runner, cells: list[Cell]) -> list[Cell]:
    """The cells that still lack a valid record for some seed."""
    records = load_records(runner.records_path)
    return [c for c in cells if seeds_to_run(runner.for_cell(c), c, records)]


@dataclass(frozen=True)
class ExpertJob:
    handle: object  # the runner, or what rebuilds it in a worker (Runner.job_handle)
    key: ExpertKey


@dataclass(frozen=True)
class DistillJob:
    handle: object
    cell: Cell


@dataclass(frozen=True)
class EvaluateJob:
    handle: object
    cell: Cell
    seeds: list


def make_missing(runner: Runner, cells: list[Cell], distill: bool = True) -> None:
    """Train the experts (and, with `distill`, distil the sets) that the given cells need
    and that are not on disk yet, in parallel where the profile asks for workers."""
    handle = runner.job_handle()
    experts, sets = missing_products(runner, cells)
    # the longest jobs first, so that the workers end together
    experts.sort(key=lambda key: -expert_work(runner.variant(key.overrides).profile,
                                              key.dataset, key.method))
    sets.sort(key=lambda cell: -distill_work(runner.for_cell(cell).sections.distill,
                                             cell.method, cell.ipc))
    run_jobs(_expert_job, [ExpertJob(handle, key) for key in experts], runner.workers,
             "pretrain", runner.progress, launcher=runner.launcher)
    if not distill:
        return
    run_jobs(_distill_job, [DistillJob(handle, cell) for cell in sets], runner.workers,
             "distill", runner.progress, launcher=runner.launcher)


def pretrain_experts(runner: Runner, cells: list[Cell]) -> list[dict]:
    """The experts of the cells that still need work (trained here when missing) and those
    on disk, with their accuracy on the source validation images. Cells whose records are
    complete need no expert: nothing is retrained for them."""
    make_missing(runner, cells_with_work(runner, cells), distill=False)
    return [_expert_job(ExpertJob(runner, key)) for key in needed_experts(runner, cells)
            if expert_path(runner, key).exists()]


def trained_experts(runner: Runner, cells: list[Cell]) -> list[dict]:
    """The experts on disk that the cells use (none is trained), each with its variant row's
    overrides, its seed and its accuracy on the source validation images."""
    rows = []
    for key in needed_experts(runner, cells):
        path = expert_path(runner, key)
        if path.exists():
            seed = runner.variant(key.overrides).profile.seed + key.index
            rows.append({"overrides": dict(key.overrides), "seed": seed, "file": path.name,
                         **_expert_job(ExpertJob(runner, key))})
    return rows


def interpolation_agreements(runner: Runner, cells: list[Cell]) -> list[dict]:
    """For each expert with domain heads on disk that the cells use (none is trained):
    `interpolation_agreement` (method/mechanism.py) on the source validation images, the
    expert interpolated toward the random initialisation of its seed as its distillation
    pool does (products.expert_pool)."""
    return [_agreement_row(runner.variant(key.overrides), key)
            for key in needed_experts(runner, cells)
            if key.method.has_domain_heads and expert_path(runner, key).exists()]


def _agreement_row(runner: Runner, key: ExpertKey) -> dict:
    task = runner.task(key.dataset, key.target)
    model, _ = expert(runner, key.dataset, task, key.method, key.index)
    seed = runner.profile.seed + key.index
    initial = new_model(runner, task, seed).to(runner.device)
    blocks = interpolation_agreement(model, initial, to_float(task.val.images, runner.device),
                                     task.val.domains.to(runner.device),
                                     runner.sections.masking.p_mask)
    return {"split": task.name, "seed": seed, "overrides": dict(key.overrides),
            "blocks": blocks}


def expert_records(runner: Runner, cells: list[Cell]) -> list[dict]:
    """The stored record (results/<profile>/experts.jsonl: curves per epoch, source val,
    heads per block) of each expert the cells use, where one was written; these render on
    a fresh clone, where no expert file is on disk."""
    files = [expert_path(runner, key).name for key in needed_experts(runner, cells)]
    latest = {r["file"]: r for r in load_records(runner.results_dir / "experts.jsonl")}
    return [latest[name] for name in dict.fromkeys(files) if name in latest]


def distill_cells(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Distil every set that cells with missing records need; rows with the first and last
    loss terms of every set on disk."""
    make_missing(runner, cells_with_work(runner, cells))
    return [distill_row(runner.for_cell(cell), cell) for cell in distilled_cells(runner, cells)
            if runner.for_cell(cell).store.synthetic_path(cell).exists()]


def evaluate_cells(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Train and test every evaluation network the cells still lack; one record each."""
    make_missing(runner, cells_with_work(runner, cells))
    handle, records = runner.job_handle(), load_records(runner.records_path)
    jobs = [EvaluateJob(handle, cell, seeds) for cell in table_entries(cells)
            for seeds in _seed_groups(runner, cell, records)]
    # the most work first, so that the workers end together
    jobs.sort(key=lambda job: -cell_evaluation_work(runner.for_cell(job.cell), job.cell))
    done = []

    def report(job, records):
        done.append(job)
        for record in records:
            print(f"[{len(done)}/{len(jobs)}] {job.cell.label} seed {record['seed']}: "
                  f"{record['acc']:.1f} %", flush=True)

    results = run_jobs(_evaluate_job, jobs, runner.workers, "evaluate", runner.progress, report,
                       launcher=runner.launcher)
    return [record for records in results for record in records]


def table_entries(cells: list[Cell]) -> list[Cell]:
    """The cells with one per table entry: a cell that two stages share (Table 2's full CADM
    row is Table 1's ACS→P CADM cell) is evaluated once, under its first stage."""
    entries = {}
    for cell in cells:
        entries.setdefault(replace(cell, stage=""), cell)
    return list(entries.values())


def _seed_groups(runner: Runner, cell: Cell, records: list[dict]) -> list[list[int]]:
    """The cell's missing seeds as jobs: one job of all of them when they train stacked,
    else one job per seed (spread over the workers)."""
    cell_runner = runner.for_cell(cell)
    seeds = seeds_to_run(cell_runner, cell, records)
    if cell_runner.sections.evaluate.stack_seeds:
        return [seeds] if seeds else []
    return [[seed] for seed in seeds]


def _runner_for(handle) -> Runner:
    """The runner of a job: the caller's own, or one rebuilt once per worker process."""
    if isinstance(handle, Runner):
        return handle
    cache = worker_cache()
    key = short_hash(handle)
    if key not in cache:
        cache.clear()
        cache[key] = Runner(**handle, progress=False)
    return cache[key]


def _expert_job(job: ExpertJob) -> dict:
    key = job.key
    runner = _runner_for(job.handle).variant(key.overrides)
    return _expert_row(runner, key.dataset, key.target, key.method, key.index)


def _expert_row(runner: Runner, dataset: str, target: str, method, index: int) -> dict:
    """An expert (trained here when missing) with its source-val accuracy and, where it has
    domain heads, their per-block diagnostics (products.mechanism), loaded once."""
    task = runner.task(dataset, target)
    _, info = expert_with_heads(runner, dataset, task, method, index)
    return {"dataset": dataset, "split": task.name, "kind": method.expert_kind, "index": index,
            "source_val_acc": info["source_val_acc"], "expert_id": info["expert_id"],
            "heads": info.get("heads")}


def _distill_job(job: DistillJob) -> dict:
    return distill_row(_runner_for(job.handle).for_cell(job.cell), job.cell)


def _evaluate_job(job: EvaluateJob) -> list[dict]:
    return run_cell(_runner_for(job.handle).for_cell(job.cell), job.cell, job.seeds)


def run_pipeline(profile_name: str, data_root=None, datasets=None, targets=None, methods=None,
                 ipcs=None, stages=None, results_dir=None, run_dir=None,
                 progress: bool = True) -> list[dict]:
    runner, cells = open_run(profile_name, data_root, datasets, targets, methods, ipcs, stages,
                             results_dir, run_dir, progress)
    return evaluate_cells(runner, cells)
