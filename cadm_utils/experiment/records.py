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
            "device": device_name(device), "torch": torch.__version__, "commit": git_commit(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields}


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
