"""The run options, declared once. The command line (`python -m cadm_utils`,
scripts/run_notebooks.py, which run_all.sh calls) adds them from here, the notebooks' `run`
parameter takes the same names (reporting/notebook.py), and a test checks that run_all.sh's
case list names the same flags."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

DEFAULT_PROFILE = "smoke"  # the main job's


@dataclass(frozen=True)
class CellOption:
    """An option that chooses a profile's cells: `name` is the notebooks' run key and
    open_run's keyword, `flag` its command-line spelling."""
    name: str
    flag: str
    help: str


CELL_OPTIONS = (
    CellOption("data_root", "--data-root", "folder holding PACS/, VLCS/, office_home/, "
                                           "domain_net/ (DomainBed layout)"),
    CellOption("datasets", "--datasets", "comma-separated, default: the profile's"),
    CellOption("targets", "--targets", "comma-separated domain letters or names"),
    CellOption("methods", "--methods", "comma-separated method names"),
    CellOption("ipcs", "--ipc", "comma-separated images per class"),
    CellOption("stages", "--stages", "comma-separated stage names of the profile"),
)
# what a notebook's `run` parameter may hold: the cell options, and progress bars on or off
NOTEBOOK_KEYS = tuple(option.name for option in CELL_OPTIONS) + ("progress",)


def add_profile_option(parser: argparse.ArgumentParser, default: str = DEFAULT_PROFILE) -> None:
    parser.add_argument("--profile", default=default, help="name in profiles/ or a YAML path")


def add_cell_options(parser: argparse.ArgumentParser) -> None:
    """--profile and every cell option (dest: the option's name)."""
    add_profile_option(parser)
    for option in CELL_OPTIONS:
        parser.add_argument(option.flag, dest=option.name, default=None, help=option.help)


def chosen_cells(args: argparse.Namespace) -> dict:
    """The cell options given on a command line, as open_run's keywords (None: all)."""
    return {option.name: getattr(args, option.name) for option in CELL_OPTIONS}
