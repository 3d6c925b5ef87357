"""A profile's GPU time estimated before any work, from the step timings that
`benchmarks/step_speed.py --out` recorded on a CUDA device (results/step_speed.jsonl).
The model, stated so that it can be checked: a distillation step costs what was measured
for its method and loop, scaled linearly by real images per class and by IPC; an evaluation
step of a cell's networks costs what was measured for its seeds (stacked or one by one, as
the profile trains them); expert pretraining and data loading are not counted."""
from __future__ import annotations

import math
from pathlib import Path

from ..method.methods import PROPOSED, REFERENCE
from ..profiles import REPO_ROOT, pretrain_epochs
from .records import load_records

TIMINGS = REPO_ROOT / "results" / "step_speed.jsonl"


def gpu_timing(path: Path = TIMINGS) -> dict | None:
    """The newest step-speed record measured on a CUDA device, or None."""
    if not Path(path).exists():
        return None
    records = [r for r in load_records(path) if r.get("device_type") == "cuda"]
    return records[-1] if records else None


def distill_seconds(profile: dict, method: str, ipc: int, timing: dict) -> float:
    settings = profile["distill"]
    timed = PROPOSED if method == PROPOSED else REFERENCE  # step_speed.py times these two
    per_step = timing["distill_s"][f"{timed}/{settings['class_steps']}"]
    scale = settings["real_per_class"] / timing["real_per_class"] * ipc / timing["ipc"]
    return settings["steps"] * per_step * scale


def evaluation_seconds(profile: dict, n_images: int, timing: dict) -> float:
    evaluate = profile["evaluate"]
    steps = evaluate["steps"] or evaluate["epochs"] * math.ceil(n_images / evaluate["batch_size"])
    per_step = timing["eval_s"]["stacked" if evaluate["stack_seeds"] else "sequential"]
    return steps * per_step * evaluate["seeds"] / timing["eval_seeds"]


def estimate_seconds(profile: dict, cells, timing: dict) -> float:
    """Distillation (each set once) and evaluation of the cells, in seconds."""
    sets, total = set(), 0.0
    for cell in cells:
        if not cell.ipc:
            continue  # the full-data row trains like an expert: not counted
        key = (cell.method.family, cell.dataset, cell.target, cell.ipc, cell.overrides)
        if cell.method.distills and key not in sets:
            sets.add(key)
            total += distill_seconds(profile, cell.method.family, cell.ipc, timing)
        factor = profile["distill"]["factor"] if cell.method.distills else 1
        # the decoded set's size at the measured number of classes
        total += evaluation_seconds(profile, timing["classes"] * cell.ipc * factor ** 2, timing)
    return total


def estimate_line(profile: dict, cells, path: Path = TIMINGS) -> str:
    timing = gpu_timing(path)
    if timing is None:
        return (f"GPU time: not estimated: no CUDA step timings in {path} (run "
                "benchmarks/step_speed.py --device cuda --out results/step_speed.jsonl)")
    shape = (f"measured on {timing['device']} at width {timing['width']}, "
             f"{timing['resolution']} px, {timing['classes']} classes")
    resolutions = {d.get("resolution") for d in profile["datasets"].values()}
    if resolutions != {timing["resolution"]} or profile["model"]["width"] != timing["width"]:
        shape += "; the profile's shape differs, so a rough guide only"
    hours = estimate_seconds(profile, cells, timing) / 3600
    return (f"GPU time: about {hours:.1f} h of distillation and evaluation ({shape}; expert "
            f"pretraining, {pretrain_epochs(profile, next(iter(profile['datasets'])))} epochs "
            "per expert, not counted)")
