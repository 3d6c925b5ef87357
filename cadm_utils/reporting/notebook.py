"""The opening of every notebook: its part of the profile, checked before any work."""
from __future__ import annotations

from ..errors import ConfigError
from ..experiment.pipeline import open_run
from ..options import NOTEBOOK_KEYS


def open_notebook(profile: str, run: dict) -> tuple:
    """(runner, cells) of the profile's cells that `run` chooses (see NOTEBOOK_KEYS; progress:
    progress bars), every cell checked first; prints how many cells on which device."""
    unknown = sorted(set(run) - set(NOTEBOOK_KEYS))
    if unknown:
        raise ConfigError(f"unknown notebook option {', '.join(map(repr, unknown))}: "
                          f"expected some of {', '.join(NOTEBOOK_KEYS)}")
    chosen = {key: value for key, value in run.items() if key != "progress"}
    runner, cells = open_run(profile, progress=bool(run.get("progress")), **chosen)
    print(f"{len(cells)} cells on {runner.device.type}")
    return runner, cells
