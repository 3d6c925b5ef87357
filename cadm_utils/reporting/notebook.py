"""The opening of every notebook: its part of the profile, checked before any work."""
from __future__ import annotations

from ..errors import ConfigError
from ..experiment.pipeline import open_run

# what a notebook's `run` parameter may choose (comma-separated names; None: all)
RUN_KEYS = ("data_root", "datasets", "targets", "methods", "ipcs", "stages", "progress")


def open_notebook(profile: str, run: dict) -> tuple:
    """(runner, cells) of the profile's cells that `run` chooses (see RUN_KEYS; progress:
    progress bars), every cell checked first; prints how many cells on which device."""
    unknown = sorted(set(run) - set(RUN_KEYS))
    if unknown:
        raise ConfigError(f"unknown notebook option {', '.join(map(repr, unknown))}: "
                          f"expected some of {', '.join(RUN_KEYS)}")
    chosen = {key: value for key, value in run.items() if key != "progress"}
    runner, cells = open_run(profile, progress=bool(run.get("progress")), **chosen)
    print(f"{len(cells)} cells on {runner.device.type}")
    return runner, cells
