"""A run that fits a time budget (short slices of GPU time, cluster jobs with a wall-time limit): the
next unfinished cells in a fixed priority order, none started that the measured cost of
earlier cells says cannot finish, and an export of what was made (records, experts,
synthetic sets; experiment/export.py) that `merge_export` brings back. The export is rewritten after every finished
cell, so a run killed at a call's time limit still returns the cells it finished."""
from __future__ import annotations

import re
import time
from pathlib import Path

from ..errors import ConfigError
from .cost import measured_seconds
from .evaluation import run_cell
from .export import ExportLimits, export, product_files
from .records import load_records, seeds_to_run


def parse_duration(text: str) -> float:
    """'11m', '90s', '1h', '1h30m' or plain seconds → seconds (ConfigError otherwise)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
        if not parts or not any(parts.groups()):
            raise ConfigError(f"--time-budget: '{text}' is not a duration such as 11m or 90s")
        hours, minutes, secs = (int(g or 0) for g in parts.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    if seconds <= 0:
        raise ConfigError(f"--time-budget must be positive, got '{text}'")
    return seconds


def priority(cell, targets: list[str], order: dict) -> tuple:
    """A cell's place in a budgeted run, from the profile's `budget` section (`order`): its
    stage group, then its row group (a row in no group takes the place of the first group
    that names nothing, or comes last), then `ipc` before other IPCs, the targets in
    profile order, base rows before variant rows. A variant row counts as its method."""
    stages = order["stages"]
    stage = next((i for i, group in enumerate(stages) if cell.stage in group), len(stages))
    groups = order["groups"]

    def matches(group):
        return (cell.method.family in group.get("methods", [cell.method.family])
                and cell.ipc in group.get("ipcs", [cell.ipc]))
    group = next((i for i, g in enumerate(groups) if g and matches(g)),
                 next((i for i, g in enumerate(groups) if not g), len(groups)))
    target = targets.index(cell.target) if cell.target in targets else len(targets)
    return (stage, group, cell.ipc != order["ipc"], target, bool(cell.overrides),
            cell.method.name)


def run_budgeted(runner, cells, budget_s: float, export_dir=None,
                 limits: ExportLimits | None = None, log=print) -> list[dict]:
    """Run whole cells in priority order until the next one would not finish in time; with
    `export_dir`, the export (within `limits`) is rewritten after every finished cell."""
    from .pipeline import make_missing

    start = time.time()
    targets = [t for d in runner.profile.datasets.values() for t in d.targets]
    earlier = load_records(runner.records_path)
    todo = sorted((c for c in cells if seeds_to_run(runner.for_cell(c), c, earlier)),
                  key=lambda c: priority(c, targets, runner.profile.budget))
    before = {str(p) for p in product_files(runner)}
    new_records = []
    for cell in todo:
        elapsed = time.time() - start
        seeds = seeds_to_run(runner.for_cell(cell), cell, earlier + new_records)
        if not seeds:  # the same table entry in another stage (e.g. CADM in Tables 1, 2)
            continue
        cost = measured_seconds(runner, cell, len(seeds), earlier + new_records)
        if cost is not None and elapsed + cost > budget_s:
            log(f"budget: stop before {cell.label} (needs ~{cost:.0f} s, "
                f"{budget_s - elapsed:.0f} s left)")
            break
        make_missing(runner, [cell])
        records = run_cell(runner.for_cell(cell), cell, seeds)
        new_records += records
        log(f"budget: {cell.label}: {len(records)} seeds in {time.time() - start - elapsed:.0f} s")
        if export_dir is not None:
            made = [p for p in product_files(runner) if str(p) not in before]
            export(runner, new_records, made, Path(export_dir), limits, log)
    return new_records
