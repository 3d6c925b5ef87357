"""Result records: one JSON object per line in results/<profile>/records.jsonl, appended
safely by many jobs, and the one way to pick records of a cell."""
from __future__ import annotations

import fcntl
import json
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..runtime import device_name, git_commit


def base_record(kind: str, dataset: str, split: str, seed: int, device: torch.device,
                **fields) -> dict:
    return {"kind": kind, "dataset": dataset, "split": split, "seed": seed,
            "device": device_name(device), **compute_fields(device),
            "torch": torch.__version__, "commit": git_commit(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields}


def compute_fields(device: torch.device) -> dict:
    """What a CPU result depends on beyond its settings: the intra-op threads and the
    kernels' instruction set (training drifts with either; on a GPU, nothing here)."""
    if device.type != "cpu":
        return {}
    return {"threads": torch.get_num_threads(),
            "cpu_kernels": torch.backends.cpu.get_cpu_capability()}


def append_record(path: str | Path, record: dict) -> None:
    """One line per record in a single write, flushed, so an interruption loses at most
    the record being written (and `load_records` skips a torn last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # many jobs (workers, Slurm) append to one file
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        fcntl.flock(handle, fcntl.LOCK_UN)


def load_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by an interruption: skipped
            _warn_once(f"{path}: line {number} is not a whole record (a run cut off while "
                       f"writing it?); skipped: {line[:60]!r}")
    return records


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """One warning per torn line and process, however often the records are read."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


CELL_FIELDS = ("dataset", "split", "method", "ipc", "net")  # what names a table entry


def cell_key(record: dict) -> tuple:
    """The table entry a record belongs to."""
    return tuple(record.get(k) for k in CELL_FIELDS)


def matching(records: list[dict], **wanted) -> list[dict]:
    """The records whose fields equal every `wanted` value (the one record matcher)."""
    return [r for r in records if all(r.get(k) == v for k, v in wanted.items())]


def latest_per_seed(records: list[dict]) -> list[dict]:
    """The newest record of each cell and seed: a cell shared by two tables (e.g. CADM in
    Tables 1 and 2) is computed once."""
    latest = {}
    for record in records:
        latest[(*cell_key(record), record.get("seed"))] = record
    return list(latest.values())


# ---------------------------------------------------------------- which records count

def current_records(runner) -> list[dict]:
    """Records made with the run's present settings and seeds, newest per seed, and of one
    product per cell: where the cell's synthetic set is on disk, only records of that very
    set (its content id); elsewhere those of the newest record's set."""
    seeds = runner.sections.evaluate.seeds
    groups = {}
    for r in load_records(runner.records_path):
        if r.get("dataset") not in runner.profile.datasets or r.get("seed", 0) >= seeds:
            continue
        variant = runner.variant(tuple(tuple(o) for o in r.get("overrides", ())))
        if r.get("config") != variant.store.config_hash(r["dataset"], r.get("ipc", 0)):
            continue
        groups.setdefault(cell_key(r), []).append(r)
    fresh = []
    for group in groups.values():
        wanted = runner.store.stored_set_id(group[-1].get("set_file"))
        if wanted is None:
            wanted = group[-1].get("set_id")
        fresh += [r for r in group if r.get("set_id") == wanted]
    return latest_per_seed(fresh)


def cell_records(runner, cell, records: list[dict]) -> list[dict]:
    """The records of one cell made with the run's present settings."""
    return matching(records, config=runner.store.config_hash(cell.dataset, cell.ipc),
                    dataset=cell.dataset, split=cell.split, method=cell.method.name,
                    ipc=cell.ipc, net=cell.net)


def seeds_to_run(runner, cell, records: list[dict] | None = None) -> list[int]:
    """The cell's seeds without a valid record. Where the cell's synthetic set is on disk,
    only records of that set count; where it is not, the records count only if every seed
    has one of a single set (then nothing is remade): otherwise the set will be made and
    every seed is run on it. `records` saves rereading the file. (`runner`: the cell's
    own, Runner.for_cell.)"""
    if records is None:
        records = load_records(runner.records_path)
    mine = cell_records(runner, cell, records)
    seeds = range(runner.sections.evaluate.seeds)
    path = runner.store.synthetic_path(cell) if cell.ipc else None
    if path is not None and path.exists():
        set_id = runner.store.stored_set_id(path.name)
        finished = {r["seed"] for r in mine if r.get("set_id") == set_id}
    elif cell.ipc:
        newest = mine[-1].get("set_id") if mine else None
        finished = {r["seed"] for r in mine if r.get("set_id") == newest}
        if not set(seeds) <= finished:
            finished = set()
    else:  # full data: no product to tie to
        finished = {r["seed"] for r in mine}
    return [s for s in seeds if s not in finished]
