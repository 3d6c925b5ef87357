"""The data layer: a registry of named multi-domain data sets (the real ones in DomainBed's
folder layout, and the embedded benchmark, registered like the others) and the tasks built
from them. `load_dataset(name, ...)` returns a `MultiDomainData`; `make_task` a view of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DataError
from . import embedded
from .base import (TRAIN, UNLISTED, VAL, MultiDomainData, Task, domain_index, in_domain,
                   leave_one_domain_out, make_task, random_split, summary_lines)
from .folders import REAL_DATASETS, load_folder_dataset

__all__ = ["DATASETS", "DATASET_NAMES", "EMBEDDED", "REAL_DATASETS", "TRAIN", "UNLISTED", "VAL",
           "MultiDomainData", "Task", "domain_index", "in_domain", "leave_one_domain_out",
           "load_dataset", "make_task", "random_split", "split_name", "summary_lines"]


@dataclass(frozen=True)
class RegisteredDataset:
    name: str
    domains: tuple[str, ...]
    letters: tuple[str, ...]  # the paper's abbreviations, e.g. "ACS→P"
    # (data_root, resolution, seed, cache_dir, progress) -> MultiDomainData
    load: Callable[..., MultiDomainData]
    needs_root: bool = True
    default_resolution: int = 64


def _folder_entry(spec) -> RegisteredDataset:
    return RegisteredDataset(spec.name, spec.domains, spec.letters,
                             lambda root, resolution, seed, cache_dir, progress:
                             load_folder_dataset(spec, root, resolution, seed, cache_dir,
                                                 progress))


EMBEDDED = "embedded"
DATASETS = {name: _folder_entry(spec) for name, spec in REAL_DATASETS.items()}
DATASETS[EMBEDDED] = RegisteredDataset(
    EMBEDDED, embedded.DOMAINS, embedded.LETTERS,
    lambda root, resolution, seed, cache_dir, progress:
    embedded.make_embedded_benchmark(seed=seed, resolution=resolution),
    needs_root=False, default_resolution=32)
DATASET_NAMES = tuple(DATASETS)


def registered(name: str) -> RegisteredDataset:
    if name not in DATASETS:
        raise DataError(f"unknown data set '{name}': expected one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def load_dataset(name: str, data_root: str | Path | None = None, resolution: int | None = None,
                 seed: int = 0, cache_dir: str | Path | None = None,
                 progress: bool = True) -> MultiDomainData:
    """Load a registered data set by name; the embedded benchmark needs no data root."""
    entry = registered(name)
    if entry.needs_root and data_root is None:
        raise DataError(f"data set '{name}' needs a data root (--data-root DIR)")
    return entry.load(data_root, resolution or entry.default_resolution, seed, cache_dir,
                      progress)


def split_name(dataset: str, target: str) -> str:
    """'ACS→P' for target 'P' or 'photo' without loading any image; 'in-domain' as is."""
    if target == "in-domain":
        return target
    entry = registered(dataset)
    if target not in entry.letters and target not in entry.domains:
        raise DataError(f"unknown domain '{target}' for {dataset}: expected one of "
                        f"{', '.join(entry.domains)}")
    index = entry.letters.index(target) if target in entry.letters else \
        entry.domains.index(target)
    return "".join(l for i, l in enumerate(entry.letters) if i != index) + "→" + \
        entry.letters[index]
