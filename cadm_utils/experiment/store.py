"""The product store of a profile: where its experts and synthetic sets live under
runs/<profile>/ and its records in results/<profile>/records.jsonl, and the keys that name
them (each made of everything that determines the product). A second run reuses what is
there; records of another key are stale."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..data import split_name
from ..method.methods import Method
from ..profiles import REPO_ROOT, pretrain_epochs
from ..settings import HOW_NOT_WHAT, Sections, code_constants, key_view


def short_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


class ProductStore:
    def __init__(self, profile, sections: Sections, results_dir=None, run_dir=None):
        # the cache-key view: keys hash the resolved values as the profile states them
        self.values, self.sections = profile.values, sections
        self.profile = profile
        name = profile.name
        self.results_dir = Path(results_dir or REPO_ROOT / "results" / name)
        self.run_dir = Path(run_dir or REPO_ROOT / "runs" / name)
        self.records_path = self.results_dir / "records.jsonl"
        self.figures_dir = REPO_ROOT / "figures" / name
        self._set_ids = {}

    def distill_config(self, ipc: int, method: Method):
        """The cell's distillation settings (the random baseline keeps whole real images)."""
        config = replace(self.sections.distill, ipc=ipc)
        return config if method.distills else replace(config, factor=1)

    def evaluation_values(self) -> dict:
        """The evaluate settings that decide an evaluation's numbers (HOW_NOT_WHAT left out)."""
        return {k: v for k, v in self.values["evaluate"].items() if k not in HOW_NOT_WHAT}

    def product_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines the experts and synthetic sets of a data set."""
        v = self.values
        return short_hash([v["datasets"][dataset], v["model"], key_view("pretrain", v["pretrain"]),
                           key_view("distill", v["distill"]) if ipc else None, v["masking"],
                           v["seed"], v["precision"], code_constants()])

    def config_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines a cell's numbers; records of another hash are stale.
        (HOW_NOT_WHAT is left out: which records exist and how they are computed, not their
        values.)"""
        parts = [self.product_hash(dataset, ipc), key_view("evaluate", self.evaluation_values())]
        full_data = key_view("full_data", self.values["full_data"])
        if ipc == 0 and full_data:  # the full-data row's own length, where one is set
            parts.append(full_data)
        return short_hash(parts)

    def expert_settings(self, dataset: str, method: Method) -> dict:
        """The pretraining settings that make the method's expert (the method chooses; CADM's
        includes its masking)."""
        settings = {k: v for k, v in key_view("pretrain", self.values["pretrain"]).items()
                    if k != "experts"}
        settings["epochs"] = pretrain_epochs(self.profile, dataset)
        return method.expert_settings(settings, self.values["masking"])

    def expert_path(self, dataset: str, task_name: str, method: Method, index: int = 0) -> Path:
        kind = method.expert_kind
        v = self.values
        key = short_hash([dataset, task_name, kind, v["model"],
                          self.expert_settings(dataset, method),
                          v["datasets"][dataset], v["seed"] + index,
                          v["precision"], code_constants()])
        # The key holds seed + index, so pool member N of seed 0 and member 0 of seed N are
        # one file. Files of members >= 1 used to carry "-N" as well; those are still read.
        folder, stem = self.run_dir / "experts", f"{dataset}-{_safe(task_name)}-{kind}"
        path = folder / f"{stem}-{key}.pt"
        legacy = folder / f"{stem}-{index}-{key}.pt"
        return legacy if index and not path.exists() and legacy.exists() else path

    def synthetic_path(self, cell) -> Path:
        config = self.distill_config(cell.ipc, cell.method)
        task_name = split_name(cell.dataset, cell.target)
        key = short_hash([cell.dataset, task_name, cell.method.key,
                          key_view("distill", asdict(config)),
                          self.sections.masking, self.product_hash(cell.dataset, cell.ipc)])
        stem = f"{cell.dataset}-{_safe(task_name)}-{_safe(cell.method.family)}-ipc{cell.ipc}-{key}"
        return self.run_dir / "synthetic" / f"{stem}.pt"

    def stored_set_id(self, set_file: str | None) -> str | None:
        """Content id of a synthetic set on disk (None when it is not here)."""
        if not set_file:
            return None
        path = self.run_dir / "synthetic" / set_file
        if not path.exists():
            return None
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._set_ids:
            self._set_ids[key] = torch.load(path, weights_only=False)["info"]["set_id"]
        return self._set_ids[key]


def content_id(state: dict) -> str:
    """A 12-hex-digit hash of a state dict's tensors (names, shapes, bytes): the identity
    of a product that records refer to."""
    digest = hashlib.sha1()
    for name, value in sorted(state.items()):
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes()
                          if tensor.numel() else b"")
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()[:12]


def _safe(name: str) -> str:
    return name.replace("→", "-to-").replace("[", "_").replace("]", "").replace(",", "+")
