"""Every cache key a profile's cells use: per cell its record key (config hash), the file
names of its experts and of its synthetic set. A refactor of the settings or of the runner
must leave them all as they are, or every committed record and product goes stale;
tests/test_cache_keys.py compares them with the snapshot in tests/cache_keys.json.

    python scripts/cache_keys.py [--write]      # print (or rewrite the snapshot of) all profiles

No data is loaded: keys depend on settings and code constants only."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cadm_utils.data import split_name  # noqa: E402
from cadm_utils.experiment.cells import plan_cells  # noqa: E402
from cadm_utils.experiment.products import optimised  # noqa: E402
from cadm_utils.experiment.runner import Runner  # noqa: E402
from cadm_utils.profiles import load_profile  # noqa: E402

PROFILES = ("ci", "smoke", "bench", "bench-dm", "bench-dm-pixels", "pacs-cpu", "pacs-dm",
            "pacs-dm-pixels", "paper", "gpu-short")
SNAPSHOT = ROOT / "tests" / "cache_keys.json"


def profile_keys(name: str) -> dict[str, dict]:
    """{cell label: {"config", "experts", "set"}} for every cell of the profile."""
    profile = load_profile(name)
    runner = Runner(profile, results_dir="/nonexistent/results", run_dir="/nonexistent/runs",
                    device="cpu", progress=False)
    keys = {}
    for cell in plan_cells(profile):
        cell_runner = runner.for_cell(cell)
        label = f"{cell.label} {list(cell.overrides)}"
        split = split_name(cell.dataset, cell.target)
        entry = {"config": cell_runner.store.config_hash(cell.dataset, cell.ipc)}
        if cell.ipc and optimised(cell_runner, cell):
            entry["experts"] = [
                cell_runner.store.expert_path(cell.dataset, split, cell.method, index).name
                for index in range(cell_runner.sections.pretrain.experts)]
        if cell.ipc:
            entry["set"] = cell_runner.store.synthetic_path(cell).name
        keys[label] = entry
    return keys


def all_keys() -> dict[str, dict]:
    return {name: profile_keys(name) for name in PROFILES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT.name}")
    args = parser.parse_args()
    keys = all_keys()
    text = json.dumps(keys, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if args.write:
        SNAPSHOT.write_text(text)
        print(f"wrote {SNAPSHOT.relative_to(ROOT)}: "
              f"{sum(len(v) for v in keys.values())} cells of {len(keys)} profiles")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
