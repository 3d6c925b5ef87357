"""Distilled sets shipped with the repository (sets/<profile>/, `export-sets --form stored`)
as a source of products: a cell whose set is not in runs/<profile>/synthetic/ takes the
shipped one that a manifest names with the same run file (`run_file`: the set's cache key,
the same for every profile that makes that very set, so pacs-dm-pixels and pacs-dm share
theirs), after checking its SHA-256, so that a re-evaluation on a fresh clone remakes no
expert and no set."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import DataError
from ..profiles import REPO_ROOT
from ..runtime import file_sha256

SETS_DIR = REPO_ROOT / "sets"
# what the pipeline keeps of a set's making (its records' provenance), carried by a
# manifest entry as `product`
PRODUCT_FIELDS = ("set_id", "expert_ids", "steps", "history", "pretrain_s", "distill_s")


def shipped_entry(run_file: str, sets_dir: Path | None = None) -> tuple[Path, dict] | None:
    """(the shipped file, its manifest entry) of the set that is the run's `run_file`,
    None where no manifest under `sets_dir` names it."""
    for manifest in sorted(Path(sets_dir or SETS_DIR).glob("*/manifest.json")):
        for entry in json.loads(manifest.read_text()).get("sets", []):
            if entry.get("run_file") == run_file:
                return manifest.parent / entry["file"], entry
    return None


def shipped_state(run_file: str, sets_dir: Path | None = None) -> dict | None:
    """The run-cache state ({"set", "info"}) of a shipped set, None where none is shipped.
    DataError (one line) when the file is missing or not what its manifest says."""
    found = shipped_entry(run_file, sets_dir)
    if found is None:
        return None
    file, entry = found
    if not file.is_file():
        raise DataError(f"{file}: listed in its manifest but missing")
    if file_sha256(file) != entry["sha256"]:
        raise DataError(f"{file}: SHA-256 differs from its manifest's (a changed or "
                        "truncated file; restore it with git checkout)")
    content = torch.load(file, map_location="cpu", weights_only=True)
    stored = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
              for k, v in content["stored"].items()}
    return {"set": stored, "info": {"set_id": entry["set_id"], **entry["product"]}}


def product_of(info: dict) -> dict:
    """The part of a run-cache set's info that a shipped copy carries."""
    return {k: info[k] for k in PRODUCT_FIELDS if k in info}
