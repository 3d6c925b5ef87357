"""Planning a run's products: which experts and synthetic sets its cells need and which of
them are not on disk yet (the pipeline makes them; the cost model prices them)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import split_name
from ..method.methods import Method
from .cells import Cell
from .products import optimised
from .shipped import shipped_entry


@dataclass(frozen=True)
class ExpertKey:
    """One pool expert that cells use: its variant row's overrides, split, method (whose
    expert kind it is) and index in the pool."""
    overrides: tuple
    dataset: str
    target: str
    method: Method
    index: int


def needed_experts(runner, cells: list[Cell]) -> list[ExpertKey]:
    """Every pool expert the cells use, one per expert kind (methods of one kind share
    their experts)."""
    by_kind = {}
    for c in cells:
        if optimised(runner.for_cell(c), c):
            for index in range(runner.for_cell(c).sections.pretrain.experts):
                kind_key = (c.overrides, c.dataset, c.target, c.method.expert_kind, index)
                by_kind.setdefault(kind_key, ExpertKey(c.overrides, c.dataset, c.target,
                                                       c.method, index))
    return [by_kind[k] for k in sorted(by_kind, key=repr)]


def expert_path(runner, key: ExpertKey) -> Path:
    """Where the expert of `key` is stored."""
    return runner.variant(key.overrides).store.expert_path(
        key.dataset, split_name(key.dataset, key.target), key.method, key.index)


def distilled_cells(runner, cells: list[Cell]) -> list[Cell]:
    """One cell per synthetic set (a set shared by two tables, or by a method and a variant
    row that changes only the evaluation, is distilled once)."""
    unique = {runner.for_cell(c).store.synthetic_path(c): c for c in cells
              if c.ipc and c.method.distills}
    return list(unique.values())


def set_at_hand(runner, cell: Cell) -> bool:
    """Whether the cell's set is in the run's store or shipped with the repository."""
    path = runner.for_cell(cell).store.synthetic_path(cell)
    return path.exists() or shipped_entry(path.name) is not None


def missing_products(runner, cells: list[Cell]) -> tuple[list[ExpertKey], list[Cell]]:
    """The experts (keys, each file once) and the sets (one cell per set) that the cells
    need and that are not on disk yet: a set at hand (made, or shipped) needs no expert."""
    making = [cell for cell in cells if not (cell.ipc and set_at_hand(runner, cell))]
    by_path = {expert_path(runner, key): key for key in needed_experts(runner, making)}
    experts = [key for path, key in by_path.items() if not path.exists()]
    sets = [cell for cell in distilled_cells(runner, making)
            if not runner.for_cell(cell).store.synthetic_path(cell).exists()]
    return experts, sets
