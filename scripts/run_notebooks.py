"""Execute the six notebooks of one profile with papermill, in one process (run_all.sh
calls this): the profile and its cells are checked first, so bad input stops the run
before any notebook starts; executed copies go to runs/<profile>/notebooks/."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from cadm_utils.__main__ import check
from cadm_utils.errors import CadmError
from cadm_utils.options import CELL_OPTIONS, add_cell_options

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_pretrain", "02_distill", "03_evaluate", "04_channel_activation", "05_umap",
             "06_tables")
# The kernel's own log stays quiet: its loopback-TCP notice and the KeyboardInterrupt that
# papermill's shutdown leaves read as failures; a failing cell still stops the run with its
# traceback (papermill raises it).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


def notebook_parameters(args: argparse.Namespace) -> dict:
    """papermill's parameters: the profile and `run`, the cell options given (the same
    names, cadm_utils/options.py) with progress bars on or off."""
    run = {"progress": not args.no_progress}
    for option in CELL_OPTIONS:
        value = getattr(args, option.name)
        if value is not None:
            run[option.name] = str(Path(value).resolve()) if option.name == "data_root" else value
    return {"profile": args.profile, "run": run}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cell_options(parser)
    parser.add_argument("--fresh", action="store_true",
                        help="delete the profile's results and products first")
    parser.add_argument("--into", default=None,
                        help="folder for the executed notebooks (default runs/<profile>/"
                             "notebooks; notebooks/ refreshes the committed reader copies, "
                             "tests/notebooks/ the nbval references)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check(argparse.Namespace(**vars(args), brief=True))
    except CadmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import papermill  # after the check: its import alone takes two seconds

    name = Path(args.profile).stem
    if args.fresh:
        for folder in (ROOT / "results" / name, ROOT / "runs" / name):
            shutil.rmtree(folder, ignore_errors=True)

    executed = Path(args.into).resolve() if args.into else ROOT / "runs" / name / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(args)
    for number, notebook in enumerate(NOTEBOOKS, 1):
        print(f"[{number}/{len(NOTEBOOKS)}] {notebook}", file=sys.stderr, flush=True)
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"),
                                   str(executed / f"{notebook}.ipynb"), parameters=parameters,
                                   log_output=True, progress_bar=False, cwd=str(ROOT),
                                   extra_arguments=KERNEL_ARGUMENTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
