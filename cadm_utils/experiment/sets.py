"""Distilled sets as files others can use, and any such file evaluated with this project's
protocol. A set file comes in one of two forms:

- "dm": what DM's `main_DM.py` saves and DC-BENCH's loaders read (`torch.load(f)["data"][-1]`
  is `(images, labels)`, the decoded sub-images), plus the source domain of each image, the
  stored multi-formation images and a metadata record;
- "stored": only the multi-formation images as optimised (`torch.load(f)["stored"]`: images,
  labels, sub_domains, factor) and the metadata, a quarter of the size at ρ = 2; `decode`
  (method/synthetic.py) turns them into the "dm" form's images, bit for bit."""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import registered, split_name
from ..errors import DataError
from ..method.methods import RandomReal
from ..method.synthetic import SyntheticSet
from ..runtime import file_sha256, save_atomic, torch_threads, writable_folder, write_atomic
from .cells import Cell, plan_cells
from .evaluation import evaluation_config, train_eval_nets
from .parallel import job_threads
from .records import append_record, base_record, current_records, matching
from .shipped import product_of
from .store import _safe, content_id

FORMAT = "cadm-set/1"
FORMS = ("dm", "stored")
PIXELS = "float32 in [0, 1], not normalised (the networks normalise inside)"


def set_file_name(cell: Cell, split: str) -> Path:
    return Path(_safe(cell.method.name)) / cell.dataset / _safe(split) / f"IPC{cell.ipc}.pt"


def export_sets(runner, out: Path, cells: list[Cell] | None = None, form: str = "dm",
                seed: int | None = None) -> list[dict]:
    """The distilled sets of `cells` (default: every cell of the profile; only those of
    pipeline seed `seed` when given) that are on disk, written in `form` under `out` as
    <method>/<dataset>/<split>/IPC<n>.pt, and out/manifest.json (file, sha256, set id, the
    records' accuracies, the run's file name and provenance); returns the manifest's
    entries. With no set on disk it writes nothing and returns []. DataError before any
    write where `out` cannot be written."""
    if form not in FORMS:
        raise DataError(f"unknown set form {form!r}: one of {', '.join(FORMS)}")
    out, entries = Path(out), []
    by_path = {}  # one file per set: a row that changes only the evaluation shares its base's
    for cell in plan_cells(runner.profile) if cells is None else cells:
        if cell.ipc and cell.net == "resnet18" and \
                seed in (None, runner.for_cell(cell).profile.seed):
            by_path.setdefault(runner.for_cell(cell).store.synthetic_path(cell), cell)
    by_path = {path: cell for path, cell in by_path.items() if path.exists()}
    if not by_path:
        return []
    writable_folder(out, "--out")
    records = current_records(runner)
    for path, cell in by_path.items():
        split = runner.task(cell.dataset, cell.target).name
        state = torch.load(path, weights_only=False)
        payload = set_payload(runner, cell, split, state, records, form)
        target = out / set_file_name(cell, split)
        save_atomic(payload, target)
        entries.append({"file": target.relative_to(out).as_posix(), "sha256": file_sha256(target),
                        "set_id": state["info"]["set_id"], "method": cell.method.name,
                        "dataset": cell.dataset, "split": split, "ipc": cell.ipc,
                        "run_file": path.name, "product": product_of(state["info"]),
                        "records": payload["info"]["records"]})
    write_atomic(out / "manifest.json", lambda tmp: tmp.write_text(
        json.dumps({"format": FORMAT, "form": form, "profile": runner.profile.name,
                    "sets": entries}, indent=1, ensure_ascii=False) + "\n"))
    return entries


def set_payload(runner, cell: Cell, split: str, state: dict, records: list[dict],
                form: str = "dm") -> dict:
    synthetic = SyntheticSet.from_state(state["set"])
    info = set_info(runner, cell, split, state["info"]["set_id"], records)
    if form == "stored":
        return {"stored": synthetic.state(), "info": {**info, "form": "stored"}}
    images, labels, domains = synthetic.decoded()
    return {"data": [(images.float().contiguous(), labels)], "domains": domains,
            "stored": synthetic.state(), "info": {**info, "form": "dm"}}


def set_info(runner, cell: Cell, split: str, set_id: str, records: list[dict]) -> dict:
    """A set file's metadata: what the set is, the settings that made it and its records."""
    own = sorted((r for r in matching(records, method=cell.method.name, dataset=cell.dataset,
                                      split=split, ipc=cell.ipc, net="resnet18")
                  if r.get("set_id") == set_id), key=lambda r: r["seed"])
    profile = runner.for_cell(cell).profile
    task = runner.task(cell.dataset, cell.target)
    return {"format": FORMAT, "set_id": set_id, "method": cell.method.name,
            "dataset": cell.dataset, "split": split, "ipc": cell.ipc,
            "pixels": PIXELS, "class_names": list(task.train.class_names),
            "domain_names": list(task.train.domain_names),
            "profile": profile.name, "overrides": [list(o) for o in cell.overrides],
            "settings": json.loads(json.dumps(
                {k: profile.values[k] for k in ("seed", "model", "pretrain", "distill",
                                                "masking", "evaluate")}, default=str)),
            "commit": own[0]["commit"] if own else None,
            "records": [{"seed": r["seed"], "acc": r["acc"],
                         "source_val_acc": r.get("source_val_acc"),
                         "threads": r.get("threads")} for r in own]}


# ----------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class SetFile:
    """A set file read once: what `torch.load` gave (tensors only) and where it came from."""
    path: Path
    content: object

    @classmethod
    def load(cls, path: Path) -> "SetFile":
        """DataError (one line) where the file is missing or torch cannot load it safely."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"set file not found: {path}")
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # not a torch file, or one with code in it
            raise DataError(f"not a tensor file that torch.load can read safely: {path} "
                            f"({type(error).__name__})") from None
        return cls(path, content)

    @property
    def info(self) -> dict | None:
        """The metadata this project's files carry (`info`: split, profile, ...), None for a
        file without it (DM's form from elsewhere, a bare pair)."""
        info = self.content.get("info") if isinstance(self.content, dict) else None
        return info if isinstance(info, dict) else None

    def pair(self, n_classes: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels): this project's file in either form, DM's (`{"data": [..., (x,
        y)]}`), a dict with `images` and `labels`, or an `(images, labels)` pair, checked
        against the data set's classes and resolution. DataError (one line) otherwise."""
        pair = _pair(self.content)
        if pair is None:
            raise DataError(f"{self.path}: expected {{'data': [(images, labels)]}}, "
                            "{'images', 'labels'} or an (images, labels) pair")
        images, labels = pair
        _check_pair(self.path, images, labels, n_classes, resolution)
        return images.float(), labels.long()


def read_set_file(path: Path, n_classes: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a set file (SetFile.pair)."""
    return SetFile.load(path).pair(n_classes, resolution)


def _pair(content):
    if isinstance(content, dict) and "data" not in content and \
            isinstance(content.get("stored"), dict):
        content = _decoded_pair(content["stored"])
    elif isinstance(content, dict) and isinstance(content.get("data"), (list, tuple)) and \
            content["data"]:
        content = content["data"][-1]
    elif isinstance(content, dict) and "images" in content and "labels" in content:
        content = (content["images"], content["labels"])
    if isinstance(content, (list, tuple)) and len(content) == 2 and \
            all(isinstance(t, torch.Tensor) for t in content):
        return content
    return None


def _decoded_pair(stored: dict):
    """The "stored" form's (images, labels) after decoding, None if it is not that form."""
    try:
        images, labels, _ = SyntheticSet.from_state(stored).decoded()
    except (KeyError, TypeError, RuntimeError, ValueError):
        return None
    return images, labels


def _check_pair(path, images, labels, n_classes: int, resolution: int) -> None:
    shape = tuple(images.shape)
    if images.dim() != 4 or shape[1:] != (3, resolution, resolution):
        raise DataError(f"{path}: images of shape {shape}, expected (N, 3, {resolution}, "
                        f"{resolution}) for this profile's resolution")
    if not images.is_floating_point():
        raise DataError(f"{path}: images of dtype {images.dtype}, expected floats in [0, 1]")
    if images.min() < -0.01 or images.max() > 1.01:
        raise DataError(f"{path}: pixels span [{images.min():.2f}, {images.max():.2f}], "
                        "expected [0, 1] (de-normalise them first)")
    if labels.dim() != 1 or len(labels) != shape[0] or labels.is_floating_point():
        raise DataError(f"{path}: labels of shape {tuple(labels.shape)} and dtype "
                        f"{labels.dtype}, expected {shape[0]} integer class indices")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: labels span {int(labels.min())}..{int(labels.max())}, "
                        f"expected classes 0..{n_classes - 1} of this data set")


def check_unseen_target(path: Path, info: dict | None, dataset: str, target: str) -> None:
    """A set is scored on a domain it was not made from: DataError naming the set's split
    where `target` is one of its source domains (or its data set differs)."""
    if not info or not info.get("split"):
        return
    split = str(info["split"])
    if info.get("dataset") not in (None, dataset):
        raise DataError(f"{path} is a set of {info['dataset']} (split {split}), not of {dataset}")
    entry = registered(dataset)
    wanted = split_name(dataset, target)  # raises on an unknown domain
    if wanted == split:
        return
    if split == "in-domain":
        raise DataError(f"{path} was made from every domain of {dataset} (in-domain): no "
                        "domain is unseen by it")
    sources = [entry.domains[entry.letters.index(letter)] for letter in split.split("→")[0]]
    raise DataError(f"{path} was made from {', '.join(sources)} for "
                    f"{entry.domains[entry.letters.index(split.split('→')[1])]} (split {split}): "
                    f"{target} is one of its source domains, so its accuracy there is not "
                    "unseen-domain accuracy")


def evaluate_set(runner, set_file: Path | SetFile, dataset: str, target: str, seeds=None,
                 out: Path | None = None, threads: int | None = None) -> list[dict]:
    """Train the profile's evaluation networks (ResNet-18, its protocol and seeds) on the
    file's images (`set_file`: its path, or the SetFile read already) and test each on the
    unseen domain and the source validation images; one record per seed, appended to
    `out` (default runs/<profile>/evaluated_sets.jsonl, which git ignores). A file that
    carries its split is refused on one of its source domains. Every input is checked
    before training. On the CPU each network trains on `threads` threads (default: what
    one of the profile's workers has, as in its run), since the trained network depends
    on them."""
    from ..method.train import accuracy

    runner.check_dataset(dataset)
    loaded = set_file if isinstance(set_file, SetFile) else SetFile.load(set_file)
    path = loaded.path
    check_unseen_target(path, loaded.info, dataset, target)
    out = Path(out or runner.run_dir / "evaluated_sets.jsonl")
    task = runner.task(dataset, target)
    images, labels = loaded.pair(task.n_classes, task.train.resolution)
    writable_folder(out.parent, "records folder")
    seeds = list(range(runner.sections.evaluate.seeds)) if seeds is None else seeds
    method = RandomReal(f"file:{Path(path).name}")
    cell = Cell("evaluate_set", dataset, target, method, 0)
    set_id = content_id({"images": images, "labels": labels})
    records = []
    on_cpu = runner.device.type == "cpu"
    with torch_threads(threads or job_threads(runner.workers)) if on_cpu else nullcontext():
        for seed, net, seconds in train_eval_nets(runner, cell, task, images, labels,
                                                  evaluation_config(runner), seeds):
            record = base_record(
                kind="eval_file", dataset=dataset, split=task.name, seed=seed,
                device=runner.device, file=str(path), set_id=set_id,
                n_train_images=len(labels), net="resnet18",
                acc=accuracy(net, task.test.images, task.test.labels, runner.device),
                source_val_acc=accuracy(net, task.val.images, task.val.labels, runner.device)
                if len(task.val) else None, eval_s=round(seconds, 2))
            append_record(out, record)
            records.append(record)
    return records
