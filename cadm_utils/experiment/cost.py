"""The cost model of a run, one for the scheduler, the budgeted run and the GPU estimate.

A job's *work* is proportional to its time at one network shape: an expert's, its epochs
times its method's relative cost per epoch (Method.expert_cost); a distillation's, its steps
times the images through the network per step (real images per class plus the decoded
synthetic ones, per class) times Method.distill_cost; an evaluation network's, its steps
times the images per step (times 4 for ResNet-50). Seconds come from measurements:
the scheduler needs none (it starts the most work first, so that the workers end together);
a budgeted run takes the seconds of cells like this one already run (`measured_seconds`);
the GPU estimate scales the step timings that `benchmarks/step_speed.py --out` recorded on a
CUDA device (results/step_speed.jsonl) by the work at the profile's shape against the work at
the measured shape (`estimate_seconds`; expert pretraining and data loading not counted)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from ..method.methods import PROPOSED, REFERENCE, Method, get_method
from ..profiles import REPO_ROOT, pretrain_epochs
from .planning import missing_products
from .records import load_records, matching

TIMINGS = REPO_ROOT / "results" / "step_speed.jsonl"
NET_COST = {"resnet50": 4.0}  # an evaluation network's work against ResNet-18's (others 1)


# ----------------------------------------------------------------------------- work
def expert_work(profile, dataset: str, method: Method) -> float:
    return pretrain_epochs(profile, dataset) * method.expert_cost


def distill_work(distill, method: Method, ipc: int) -> float:
    """Steps × images per class through the network per step × the method's cost (0 for a
    set that is not optimised); `distill` a DistillConfig."""
    if not method.distills or not distill.steps:
        return 0.0
    per_class = distill.real_per_class + ipc * distill.factor ** 2
    return distill.steps * per_class * method.distill_cost


def evaluation_steps(evaluate, n_images: int) -> int:
    """An evaluation network's optimiser steps on a set of `n_images` (an EvaluateConfig)."""
    return evaluate.steps or evaluate.epochs * math.ceil(n_images / evaluate.batch_size)


def evaluation_work(evaluate, n_images: int, net: str = "resnet18") -> float:
    """One evaluation network's steps × images per step (its set of `n_images`)."""
    return (evaluation_steps(evaluate, n_images) * min(evaluate.batch_size, n_images)
            * NET_COST.get(net, 1.0))


def cell_evaluation_work(runner, cell) -> float:
    """An evaluation network of the cell: on its decoded set, or (the full-data row) on every
    source training image for the experts' length."""
    from .evaluation import full_data_config

    task = runner.task(cell.dataset, cell.target)
    if cell.ipc == 0:
        config = full_data_config(runner, cell.dataset)
        steps = config.epochs * math.ceil(len(task.train.labels) / config.batch_size)
        return steps * config.batch_size
    factor = runner.store.distill_config(cell.ipc, cell.method).factor
    return evaluation_work(runner.sections.evaluate, task.n_classes * cell.ipc * factor ** 2,
                           cell.net)


# ----------------------------------------------------------------------------- measured
def measured_seconds(runner, cell, seeds: int, records: list[dict]) -> float | None:
    """Seconds of a cell like this one (same method, IPC and network; else any at that IPC
    and network) already run, or None when none has: its evaluations, plus a distillation
    only if its set is not on disk and an expert's training only if its experts are not (a
    variant row that only changes the evaluation, or the loop, reuses them)."""
    alike = matching(records, method=cell.method.name, ipc=cell.ipc, net=cell.net) or \
        matching(records, ipc=cell.ipc, net=cell.net)
    if not alike:
        return None
    experts, sets = missing_products(runner, [cell])
    cost = seeds * sum(r.get("eval_s", 0.0) for r in alike) / len(alike)
    if sets:
        cost += max(r.get("distill_s", 0.0) for r in alike)
    if experts:
        cost += max(r.get("pretrain_s", 0.0) for r in alike)
    return cost


# ----------------------------------------------------------------------------- GPU estimate


def gpu_timing(path: Path = TIMINGS) -> dict | None:
    """The newest step-speed record measured on a CUDA device, or None."""
    if not Path(path).exists():
        return None
    records = [r for r in load_records(path) if r.get("device_type") == "cuda"]
    return records[-1] if records else None


def distill_seconds(profile, method: Method, ipc: int, timing: dict) -> float:
    """The measured step of MMD's or CADM's loop (what step_speed.py times; other methods
    take MMD's) scaled by the distillation's work against one timed step's work."""
    settings = profile.sections.distill
    timed = get_method(PROPOSED if method.family == PROPOSED else REFERENCE)
    per_step = timing["distill_s"][f"{timed.name}/{settings.class_steps}"]
    measured = replace(settings, steps=1, real_per_class=timing["real_per_class"])
    return per_step * distill_work(settings, method, ipc) / distill_work(
        measured, timed, timing["ipc"])


def evaluation_seconds(profile, n_images: int, timing: dict) -> float:
    evaluate = profile.sections.evaluate
    per_step = timing["eval_s"]["stacked" if evaluate.stack_seeds else "sequential"]
    return evaluation_steps(evaluate, n_images) * per_step * evaluate.seeds / \
        timing["eval_seeds"]


def estimate_seconds(profile, cells, timing: dict) -> float:
    """Distillation (each set once) and evaluation of the cells, in seconds."""
    sets, total = set(), 0.0
    for cell in cells:
        if not cell.ipc:
            continue  # the full-data row trains like an expert: not counted
        key = (cell.method.family, cell.dataset, cell.target, cell.ipc, cell.overrides)
        if cell.method.distills and key not in sets:
            sets.add(key)
            total += distill_seconds(profile, cell.method, cell.ipc, timing)
        factor = profile.sections.distill.factor if cell.method.distills else 1
        # the decoded set's size at the measured number of classes
        total += evaluation_seconds(profile, timing["classes"] * cell.ipc * factor ** 2, timing)
    return total


def estimate_line(profile, cells, path: Path = TIMINGS) -> str:
    timing = gpu_timing(path)
    if timing is None:
        return (f"GPU time: not estimated: no CUDA step timings in {path} (run "
                "benchmarks/step_speed.py --device cuda --out results/step_speed.jsonl)")
    shape = (f"measured on {timing['device']} at width {timing['width']}, "
             f"{timing['resolution']} px, {timing['classes']} classes")
    resolutions = {d.resolution for d in profile.datasets.values()}
    if resolutions != {timing["resolution"]} or profile.sections.model.width != timing["width"]:
        shape += "; the profile's shape differs, so a rough guide only"
    hours = estimate_seconds(profile, cells, timing) / 3600
    return (f"GPU time: about {hours:.1f} h of distillation and evaluation ({shape}; expert "
            f"pretraining, {pretrain_epochs(profile, next(iter(profile.datasets)))} epochs "
            "per expert, not counted)")
