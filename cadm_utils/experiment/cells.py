"""Planning: a profile's stages become cells, one table entry each (a method at one IPC on
one split, evaluated over seeds); variant rows and Table 2's ablation rows are cells too."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..data import split_name
from ..errors import ConfigError
from ..method.methods import FULL_DATA, Method, ablation_variant, get_method
from ..method.models import EVAL_NETS
from ..settings import parse_ipcs, parse_names

ABLATION_ROWS = ((False, False, False), (True, False, False), (False, True, False),
                 (False, True, True), (True, True, True))


@dataclass(frozen=True)
class Cell:
    """One table entry: a method at one IPC on one split, evaluated over several seeds."""

    stage: str
    dataset: str
    target: str
    method: Method
    ipc: int  # 0 for the full-data reference
    net: str = "resnet18"  # evaluation network (Table 3 varies it)
    overrides: tuple = ()  # ((setting path, value), ...) of a variant row (method checks)

    @property
    def split(self) -> str:
        return split_name(self.dataset, self.target)

    @property
    def label(self) -> str:
        net = "" if self.net == "resnet18" else f" on {self.net}"
        return f"{self.stage}: {self.dataset} {self.target} {self.method.name} ipc{self.ipc}{net}"


def _split_arg(value, default, option: str = ""):
    """A cell filter: None = the profile's list; else the command line's (checked)."""
    if value is None:
        return list(default)
    if option == "ipc":
        return parse_ipcs(",".join(map(str, value)) if isinstance(value, (list, tuple)) else value)
    return parse_names(option, value)


def plan_cells(profile, datasets=None, targets=None, methods=None, ipcs=None,
               stages=None) -> list[Cell]:
    """All cells of the chosen stages, filtered; raises ConfigError on unknown or repeated
    names and on IPCs that are not integers >= 1."""
    chosen_ipcs = _split_arg(ipcs, [], "ipc") if ipcs is not None else None
    chosen_methods = _split_arg(methods, [], "methods") if methods is not None else None
    chosen_targets = _split_arg(targets, [], "targets") if targets is not None else None
    cells = []
    for name in _split_arg(stages, list(profile.stages), "stages"):
        if name not in profile.stages:
            raise ConfigError(f"unknown stage '{name}': profile has {', '.join(profile.stages)}")
        stage = profile.stages[name]
        _check_nets(stage)
        for dataset in _split_arg(datasets, list(stage.datasets), "datasets"):
            if dataset not in profile.datasets:
                raise ConfigError(f"data set '{dataset}' is not in the profile "
                                  f"(has {', '.join(profile.datasets)})")
            if dataset not in stage.datasets:
                continue
            for target in chosen_targets or []:
                split_name(dataset, target)  # raises on an unknown domain
            stage_targets = list(stage.targets_of(profile.datasets, dataset))
            chosen = chosen_targets or stage_targets
            if stage_targets == ["in-domain"]:
                chosen = stage_targets  # Table 4 has no target to choose
            for target in chosen:
                if target not in stage_targets:
                    continue
                for method, overrides in stage_rows(stage, chosen_methods):
                    for ipc in chosen_ipcs or stage.ipcs:
                        for net in stage.nets or ("resnet18",):
                            cells.append(Cell(name, dataset, target, method, int(ipc), net,
                                              overrides))
                if stage.full_data and (chosen_methods is None or "full" in chosen_methods):
                    cells.append(Cell(name, dataset, target, FULL_DATA, 0))
    return cells


def _check_nets(stage) -> None:
    for net in stage.nets or ():
        if net not in EVAL_NETS:
            raise ConfigError(f"unknown evaluation network '{net}': "
                              f"expected one of {', '.join(EVAL_NETS)}")


def stage_methods(stage, chosen) -> list[Method]:
    """The stage's methods in profile order, restricted to `chosen` (names checked)."""
    return [method for method, _ in stage_rows(stage, chosen)]


def stage_rows(stage, chosen) -> list[tuple[Method, tuple]]:
    """(method, overrides) per row of the stage, as its kind plans them (ROWS_BY_KIND; a kind
    without an entry: one row per method), in profile order, restricted to `chosen`."""
    return ROWS_BY_KIND.get(stage.kind, method_rows)(stage, chosen)


def method_rows(stage, chosen) -> list[tuple[Method, tuple]]:
    """One row per method of the stage, restricted to `chosen` (names checked)."""
    for name in chosen or []:
        if name != "full":
            get_method(name)  # raises on an unknown name
    methods = stage.methods or ()
    wanted = chosen if chosen is not None else methods
    return [(get_method(m), ()) for m in methods if m in wanted]


def variant_rows(stage, chosen) -> list[tuple[Method, tuple]]:
    """Each method under each of the stage's named `variants` (setting overrides)."""
    return [(variant_method(base, row, overrides), tuple(sorted(overrides.items())))
            for base, _ in method_rows(stage, chosen)
            for row, overrides in stage.variants.items()]


def ablation_rows(stage, chosen) -> list[tuple[Method, tuple]]:
    """Table 2's loss ablation: CADM with its terms on one by one."""
    return [(ablation_variant(*row), ()) for row in ABLATION_ROWS]


ROWS_BY_KIND = {"variants": variant_rows, "ablation": ablation_rows}


def variant_method(base: Method, row: str, overrides: dict) -> Method:
    """The base method named for its variant row; without overrides it is the base itself
    (and shares its cells)."""
    return base if not overrides else replace(base, name=f"{base.name}{{{row}}}",
                                                 base=base.name)
