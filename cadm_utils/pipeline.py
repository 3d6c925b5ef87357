"""Runs the cells of a profile: pretrain experts, distill, evaluate, and write records.

Every product is cached under runs/<profile>/ (experts, synthetic sets, distillation
checkpoints) and every evaluation is a record in results/<profile>/records.jsonl, so a
second run skips finished cells and an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .data import Task, load_dataset, make_task, split_name
from .distill import DistillConfig, distill
from .errors import ConfigError
from .methods import MaskingConfig, Method, ablation_variant, get_method
from .models import EVAL_NETS, DomainAwareResNet, build_eval_net, resolve_stem
from .parallel import run_jobs, worker_cache
from .paper_numbers import GPU_FULL_DATA_ANCHORS, TABLE2, TABLE3, paper_values
from .profiles import REPO_ROOT, load_profile, pretrain_epochs
from .results import (Table, ablation_table, append_record, base_record,
                      cross_architecture_table, latest_per_seed, load_records, method_table,
                      variant_table)
from .runtime import pick_device, save_atomic, set_precision, use_cuda_path
from .settings import EVAL_SEED_OFFSET, code_constants, parse_ipcs, parse_names, with_overrides
from .synthetic import SyntheticSet, check_ipc
from .train import TrainConfig, accuracy, train_classifier

# Table 2 rows after the all-off row: (L_adm, L_reg masked, L_cons)
ABLATION_ROWS = ((False, False, False), (True, False, False), (False, True, False),
                 (False, True, True), (True, True, True))


def short_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


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
    def label(self) -> str:
        net = "" if self.net == "resnet18" else f" on {self.net}"
        return f"{self.stage}: {self.dataset} {self.target} {self.method.name} ipc{self.ipc}{net}"


class Runner:
    def __init__(self, profile: dict, data_root=None, results_dir=None, run_dir=None,
                 device=None, progress: bool = True):
        self.profile = profile
        self.data_root = data_root
        self.device = pick_device(device or profile.get("device"))
        self.progress = progress
        name = profile["name"]
        self.results_dir = Path(results_dir or REPO_ROOT / "results" / name)
        self.run_dir = Path(run_dir or REPO_ROOT / "runs" / name)
        self.records_path = self.results_dir / "records.jsonl"
        self.figures_dir = REPO_ROOT / "figures" / name
        self._data = {}
        self._variants = {}
        self._set_ids = {}
        set_precision(profile["precision"])
        use_cuda_path(profile["cuda_path"])
        self.masking = MaskingConfig(**profile["masking"])
        self.spec = {"profile": profile, "data_root": data_root, "device": str(self.device),
                     "results_dir": str(self.results_dir), "run_dir": str(self.run_dir)}

    def for_cell(self, cell: "Cell") -> "Runner":
        """This runner, or the one of the cell's variant row."""
        return self.variant(cell.overrides)

    def variant(self, overrides: tuple) -> "Runner":
        """The runner of a variant row (the profile with its overrides, ((path, value), ...)),
        sharing data and output folders; this runner itself without overrides."""
        if not overrides:
            return self
        if overrides not in self._variants:
            variant = Runner.__new__(Runner)
            variant.__dict__.update(self.__dict__)
            variant.profile = with_overrides(self.profile, dict(overrides))
            variant.masking = MaskingConfig(**variant.profile["masking"])
            variant._variants = {}
            self._variants[overrides] = variant
        return self._variants[overrides]

    @property
    def workers(self) -> int:
        """Processes for independent jobs: the profile's `workers` (or $CADM_WORKERS) on
        the CPU, always 1 on a GPU."""
        if self.device.type != "cpu":
            return 1
        value = os.environ.get("CADM_WORKERS") or self.profile.get("workers", 1)
        try:
            workers = int(value)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ConfigError(f"invalid number of workers '{value}': expected an integer >= 1")
        return workers

    @property
    def launcher(self) -> dict:
        """How independent jobs run: local processes, or submitit (logs in runs/<profile>/
        submitit)."""
        return {"kind": self.profile["launcher"], "slurm": self.profile["slurm"],
                "folder": str(self.run_dir / "submitit")}

    def job_handle(self):
        """What a job carries to find this runner: itself in-process, else its settings."""
        if self.workers == 1 and self.profile["launcher"] == "local":
            return self
        return self.spec

    # ------------------------------------------------------------------ inputs
    def data(self, dataset: str):
        if dataset not in self._data:
            resolution = self.profile["datasets"][dataset].get("resolution")
            self._data[dataset] = load_dataset(dataset, self.data_root, resolution,
                                               progress=self.progress)
        return self._data[dataset]

    def task(self, dataset: str, target: str) -> Task:
        return make_task(self.data(dataset), target)

    def distill_config(self, ipc: int, method: Method) -> DistillConfig:
        settings = dict(self.profile["distill"])
        if not method.distill:
            settings["factor"] = 1  # random baseline: whole real images
        return DistillConfig(ipc=ipc, **settings)

    def product_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines the experts and synthetic sets of a data set."""
        p = self.profile
        return short_hash([p["datasets"][dataset], p["model"], p["pretrain"],
                           p["distill"] if ipc else None, p["masking"], p["seed"],
                           p["precision"], code_constants()])

    def config_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines a cell's numbers; records of another hash are stale.
        (The number of seeds is left out: it decides which records exist, not their values.)"""
        evaluate = {k: v for k, v in self.profile["evaluate"].items() if k != "seeds"}
        return short_hash([self.product_hash(dataset, ipc), evaluate])

    def current_records(self) -> list[dict]:
        """Records made with the profile's present settings and seeds, newest per seed, and
        of one product per cell: where the cell's synthetic set is on disk, only records of
        that very set (its content id); elsewhere those of the newest record's set."""
        seeds = self.profile["evaluate"]["seeds"]
        groups = {}
        for r in load_records(self.records_path):
            if r.get("dataset") not in self.profile["datasets"] or r.get("seed", 0) >= seeds:
                continue
            variant = self.variant_runner(r)
            if variant is None or r.get("config") != variant.config_hash(r["dataset"],
                                                                          r.get("ipc", 0)):
                continue
            groups.setdefault(record_cell_key(r), []).append(r)
        fresh = []
        for group in groups.values():
            wanted = self.stored_set_id(group[-1].get("set_file"))
            if wanted is None:
                wanted = group[-1].get("set_id")
            fresh += [r for r in group if r.get("set_id") == wanted]
        return latest_per_seed(fresh)

    def variant_runner(self, record: dict) -> "Runner | None":
        return self.variant(tuple(tuple(o) for o in record.get("overrides", ())))

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

    # ------------------------------------------------------------------ products
    def expert_settings(self, dataset: str, kind: str) -> dict:
        """The pretraining settings that make an expert of this kind (masking only for
        CADM's, the 'domain' kind)."""
        settings = {k: v for k, v in self.profile["pretrain"].items() if k != "experts"}
        settings["epochs"] = pretrain_epochs(self.profile, dataset)
        if kind != "domain":
            settings.pop("masked"), settings.pop("mask_kl_weight")
        elif settings["masked"]:
            settings["masking"] = self.profile["masking"]
        return settings

    def expert_path(self, dataset: str, task_name: str, kind: str, index: int = 0) -> Path:
        key = short_hash([dataset, task_name, kind, self.profile["model"],
                          self.expert_settings(dataset, kind), self.profile["datasets"][dataset],
                          self.profile["seed"] + index, self.profile["precision"],
                          code_constants()])
        suffix = f"-{index}" if index else ""
        return self.run_dir / "experts" / f"{dataset}-{_safe(task_name)}-{kind}{suffix}-{key}.pt"

    def expert(self, dataset: str, task: Task, kind: str,
               index: int = 0) -> tuple[DomainAwareResNet, dict]:
        """Pretrained expert number `index` of the pool (seed + index): Eq. 1 for 'plain',
        Eq. 10 for 'domain' (with DomainDrop's masks when pretrain.masked), cached on disk.
        Returns the model and its stored info (wall time, source accuracy, content id)."""
        settings = self.expert_settings(dataset, kind)
        path = self.expert_path(dataset, task.name, kind, index)
        seed = self.profile["seed"] + index
        model = self.new_model(task, seed)
        if path.exists():
            state = torch.load(path, weights_only=False)
            model.load_state_dict(state["model"])
            return model.to(self.device).eval(), state["info"]
        start = time.time()
        config = TrainConfig(augment="crop_flip", epochs=settings["epochs"],
                             batch_size=settings["batch_size"], lr=settings["lr"])
        masked = {"masking": self.masking, "kl_weight": settings["mask_kl_weight"]} \
            if kind == "domain" and settings["masked"] else None
        model = train_classifier(model, task.train.images, task.train.labels, config, seed,
                                 self.device, domains=task.train.domains, objective=kind,
                                 progress=self.progress, desc=f"pretrain {task.name} {kind}",
                                 masked=masked)
        info = {"wall_s": time.time() - start, "expert_id": content_id(model.state_dict()),
                "source_val_acc": accuracy(model, task.val.images, task.val.labels,
                                           self.device)}
        save_atomic({"model": model.state_dict(), "info": info}, path)
        return model, info

    def expert_pool(self, dataset: str, task: Task, kind: str) -> tuple[list, list[dict]]:
        """NCFM's pool: [(trained, initial)] for the profile's pretrain.experts seeds."""
        pool, infos = [], []
        for index in range(self.profile["pretrain"]["experts"]):
            model, info = self.expert(dataset, task, kind, index)
            pool.append((model, self.new_model(task, self.profile["seed"] + index)))
            infos.append(info)
        return pool, infos

    def new_model(self, task: Task, seed: int) -> DomainAwareResNet:
        torch.manual_seed(seed)  # torch's own start seed differs per process
        settings = self.profile["model"]
        return DomainAwareResNet(task.n_classes, task.n_domains, settings["width"],
                                 task.train.resolution, settings["grl_weight"],
                                 stem=settings["stem"])

    def synthetic_path(self, cell: Cell) -> Path:
        config = self.distill_config(cell.ipc, cell.method)
        task_name = split_name(cell.dataset, cell.target)
        key = short_hash([cell.dataset, task_name, cell.method.key, asdict(config),
                          self.masking, self.product_hash(cell.dataset, cell.ipc)])
        stem = f"{cell.dataset}-{_safe(task_name)}-{_safe(cell.method.name)}-ipc{cell.ipc}-{key}"
        return self.run_dir / "synthetic" / f"{stem}.pt"

    def synthetic_set(self, cell: Cell, task: Task) -> tuple[SyntheticSet, dict]:
        """Distilled set of a cell (cached), with wall times, the loss history, its content
        id and its experts' ids."""
        config = self.distill_config(cell.ipc, cell.method)
        final = self.synthetic_path(cell)
        if final.exists():
            state = torch.load(final, weights_only=False)
            return SyntheticSet.from_state(state["set"]), state["info"]
        info = {"pretrain_s": 0.0, "expert_ids": []}
        pool = None
        if cell.method.distill:
            pool, infos = self.expert_pool(cell.dataset, task, cell.method.pretrain)
            info["pretrain_s"] = sum(i["wall_s"] for i in infos)
            info["expert_ids"] = [i["expert_id"] for i in infos]
        start = time.time()
        synthetic, history = distill(pool, task, cell.method, config, self.masking,
                                     self.profile["seed"], self.device,
                                     checkpoint=self.run_dir / "checkpoints" / final.name,
                                     progress=self.progress)
        info.update(distill_s=time.time() - start, steps=config.steps,
                    history=history[:: max(1, len(history) // 50)],
                    set_id=content_id(synthetic.state()))
        save_atomic({"set": synthetic.state(), "info": info}, final)
        return synthetic, info

    # ------------------------------------------------------------------ cells
    def evaluation_config(self) -> TrainConfig:
        """The profile's training of the evaluation networks (DSA on)."""
        settings = {k: v for k, v in self.profile["evaluate"].items() if k != "seeds"}
        return TrainConfig(augment="dsa", **settings)

    def distill_row(self, cell: Cell) -> dict:
        task = self.task(cell.dataset, cell.target)
        synthetic, info = self.synthetic_set(cell, task)
        history = info["history"]
        return {"split": task.name, "method": cell.method.name, "ipc": cell.ipc,
                "images": tuple(synthetic.images.shape), "first": history[0],
                "last": history[-1], "set_id": info["set_id"]}

    def cell_records(self, cell: Cell, records: list[dict]) -> list[dict]:
        config = self.config_hash(cell.dataset, cell.ipc)
        task_name = split_name(cell.dataset, cell.target)
        return [r for r in records
                if r.get("config") == config and r.get("method") == cell.method.name
                and r.get("dataset") == cell.dataset and r.get("split") == task_name
                and r.get("ipc") == cell.ipc and r.get("net") == cell.net]

    def seeds_to_run(self, cell: Cell, records: list[dict] | None = None) -> list[int]:
        """The cell's seeds without a valid record. Where the cell's synthetic set is on
        disk, only records of that set count; where it is not, the records count only if
        every seed has one of a single set (then nothing is remade): otherwise the set will
        be made here and every seed is run on it. `records` saves rereading the file."""
        if records is None:
            records = load_records(self.records_path)
        mine = self.cell_records(cell, records)
        seeds = range(self.profile["evaluate"]["seeds"])
        if cell.ipc and self.synthetic_path(cell).exists():
            set_id = self.stored_set_id(self.synthetic_path(cell).name)
            finished = {r["seed"] for r in mine if r.get("set_id") == set_id}
        elif cell.ipc:
            newest = mine[-1].get("set_id") if mine else None
            finished = {r["seed"] for r in mine if r.get("set_id") == newest}
            if not set(seeds) <= finished:
                finished = set()
        else:  # full data: no product to tie to
            finished = {r["seed"] for r in mine}
        return [s for s in seeds if s not in finished]

    def run_cell(self, cell: Cell, seeds: list[int] | None = None) -> list[dict]:
        """Evaluate the cell for `seeds` (default: every seed without a valid record)."""
        task = self.task(cell.dataset, cell.target)
        todo = self.seeds_to_run(cell) if seeds is None else list(seeds)
        if not todo:
            return []
        provenance = {"set_id": None, "set_file": None, "expert_ids": []}
        if cell.ipc == 0:  # full-data reference: every source training image
            images, labels, info = task.train.images, task.train.labels, {}
            settings = self.profile["pretrain"]
            config = TrainConfig(augment="crop_flip",
                                 epochs=pretrain_epochs(self.profile, cell.dataset),
                                 batch_size=settings["batch_size"], lr=settings["lr"])
        else:
            synthetic, info = self.synthetic_set(cell, task)
            images, labels, _ = synthetic.decoded()
            config = self.evaluation_config()
            provenance = {"set_id": info["set_id"], "set_file": self.synthetic_path(cell).name,
                          "expert_ids": info["expert_ids"]}
        records = []
        for seed in todo:
            start = time.time()
            init_seed = seed + EVAL_SEED_OFFSET  # never the expert's initial weights
            torch.manual_seed(init_seed)
            fresh = build_eval_net(cell.net, task.n_classes, task.n_domains,
                                   task.train.resolution, self.profile["model"]["width"],
                                   self.profile["model"]["stem"])
            net = train_classifier(fresh, images, labels, config, init_seed, self.device,
                                   progress=self.progress,
                                   desc=f"evaluate {cell.method.name} {cell.net} seed {seed}")
            history = info.get("history") or [{}]
            record = base_record(
                kind="eval", dataset=cell.dataset, split=task.name, seed=seed,
                device=self.device, stage=cell.stage, method=cell.method.name, ipc=cell.ipc,
                net=cell.net, config=self.config_hash(cell.dataset, cell.ipc),
                overrides=[list(o) for o in cell.overrides],
                acc=accuracy(net, task.test.images, task.test.labels, self.device),
                source_val_acc=accuracy(net, task.val.images, task.val.labels, self.device)
                if len(task.val) else None,
                eval_s=round(time.time() - start, 2),
                pretrain_s=round(info.get("pretrain_s", 0.0), 2),
                distill_s=round(info.get("distill_s", 0.0), 2),
                loss_first=history[0], loss_last=history[-1],
                n_train_images=len(labels), **provenance)
            append_record(self.records_path, record)
            records.append(record)
        return records


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


def record_cell_key(record: dict) -> tuple:
    return tuple(record.get(k) for k in ("dataset", "split", "method", "ipc", "net"))


def _safe(name: str) -> str:
    return name.replace("→", "-to-").replace("[", "_").replace("]", "").replace(",", "+")


def _split_arg(value, default, option: str = ""):
    """A cell filter: None = the profile's list; else the command line's (checked)."""
    if value is None:
        return list(default)
    if option == "ipc":
        return parse_ipcs(",".join(map(str, value)) if isinstance(value, (list, tuple)) else value)
    return parse_names(option, value)


def plan_cells(profile: dict, datasets=None, targets=None, methods=None, ipcs=None,
               stages=None) -> list[Cell]:
    """All cells of the chosen stages, filtered; raises ConfigError on unknown or repeated
    names and on IPCs that are not integers >= 1."""
    chosen_ipcs = _split_arg(ipcs, [], "ipc") if ipcs is not None else None
    chosen_methods = _split_arg(methods, [], "methods") if methods is not None else None
    chosen_targets = _split_arg(targets, [], "targets") if targets is not None else None
    cells = []
    stage_settings = profile["stages"]
    for stage in _split_arg(stages, stage_settings, "stages"):
        if stage not in stage_settings:
            raise ConfigError(f"unknown stage '{stage}': profile has {', '.join(stage_settings)}")
        settings = stage_settings[stage]
        _check_nets(settings)
        for dataset in _split_arg(datasets, settings["datasets"], "datasets"):
            if dataset not in profile["datasets"]:
                raise ConfigError(f"data set '{dataset}' is not in the profile "
                                  f"(has {', '.join(profile['datasets'])})")
            if dataset not in settings["datasets"]:
                continue
            for target in chosen_targets or []:
                split_name(dataset, target)  # raises on an unknown domain
            stage_targets = settings.get("targets") or profile["datasets"][dataset]["targets"]
            chosen = chosen_targets or stage_targets
            if stage_targets == ["in-domain"]:
                chosen = stage_targets  # Table 4 has no target to choose
            for target in chosen:
                if target not in stage_targets:
                    continue
                for method, overrides in _stage_rows(settings, chosen_methods):
                    for ipc in chosen_ipcs or settings["ipcs"]:
                        for net in settings.get("nets", ["resnet18"]):
                            cells.append(Cell(stage, dataset, target, method, int(ipc), net,
                                              overrides))
                if settings.get("full_data") and (chosen_methods is None
                                                  or "full" in chosen_methods):
                    cells.append(Cell(stage, dataset, target, Method("full", distill=False), 0))
    return cells


def _check_nets(settings: dict) -> None:
    for net in settings.get("nets", []):
        if net not in EVAL_NETS:
            raise ConfigError(f"unknown evaluation network '{net}': "
                              f"expected one of {', '.join(EVAL_NETS)}")


def _stage_methods(settings: dict, chosen) -> list[Method]:
    """The stage's methods in profile order, restricted to `chosen` (names checked)."""
    return [method for method, _ in _stage_rows(settings, chosen)]


def _stage_rows(settings: dict, chosen) -> list[tuple[Method, tuple]]:
    """(method, overrides) per row: Table 2's loss ablation, a stage's `variants` (one
    method under named setting overrides, e.g. the reference-behaviour checks), or its
    methods in profile order restricted to `chosen`."""
    if settings.get("ablation"):
        return [(ablation_variant(*row), ()) for row in ABLATION_ROWS]
    for name in chosen or []:
        if name != "full":
            get_method(name)  # raises on an unknown name
    if settings.get("variants"):
        base = get_method(settings["methods"][0])
        if chosen is not None and base.name not in chosen:
            return []
        return [(variant_method(base, row, overrides), tuple(sorted(overrides.items())))
                for row, overrides in settings["variants"].items()]
    wanted = chosen if chosen is not None else settings["methods"]
    return [(get_method(m), ()) for m in settings["methods"] if m in wanted]


def variant_method(base: Method, row: str, overrides: dict) -> Method:
    """The base method named for its variant row; without overrides it is the base itself
    (and shares its cells)."""
    return base if not overrides else replace(base, name=f"{base.name}{{{row}}}")


def validate_cells(runner: Runner, cells: list[Cell]) -> None:
    """Everything that can fail before long work: data, targets, IPC, settings."""
    runner.workers  # raises on a bad number
    resolve_stem(runner.profile["model"]["stem"], 64)
    runner.evaluation_config()
    for cell in cells:
        task = runner.task(cell.dataset, cell.target)
        if cell.ipc:
            config = runner.for_cell(cell).distill_config(cell.ipc, cell.method)
            check_ipc(task.train, task.source_domains, cell.ipc, config.factor)


def open_run(profile_name, data_root=None, datasets=None, targets=None, methods=None, ipcs=None,
             stages=None, results_dir=None, run_dir=None, progress: bool = True):
    """Load the profile, plan the chosen cells and check them all before any long work."""
    profile = load_profile(profile_name)
    cells = plan_cells(profile, datasets, targets, methods, ipcs, stages)
    if not cells:
        raise ConfigError("no cell matches the chosen data sets, targets, methods and IPCs")
    runner = Runner(profile, data_root, results_dir, run_dir, progress=progress)
    validate_cells(runner, cells)
    return runner, cells


def cells_with_work(runner: Runner, cells: list[Cell]) -> list[Cell]:
    """The cells that still lack a valid record for some seed."""
    records = load_records(runner.records_path)
    return [c for c in cells if runner.for_cell(c).seeds_to_run(c, records)]


def needed_experts(runner: Runner, cells: list[Cell]) -> list[tuple]:
    """(overrides, dataset, target, kind, index) of every pool expert the cells use."""
    keys = set()
    for c in cells:
        if c.method.distill:
            for index in range(runner.for_cell(c).profile["pretrain"]["experts"]):
                keys.add((c.overrides, c.dataset, c.target, c.method.pretrain, index))
    return sorted(keys, key=repr)


def distilled_cells(cells: list[Cell]) -> list[Cell]:
    """One cell per synthetic set (a set shared by two tables is distilled once)."""
    unique = {(c.dataset, c.target, c.method, c.ipc, c.overrides): c for c in cells
              if c.ipc and c.method.distill}
    return list(unique.values())


def make_missing(runner: Runner, cells: list[Cell], distill: bool = True) -> None:
    """Train the experts (and, with `distill`, distil the sets) that the given cells need
    and that are not on disk yet, in parallel where the profile asks for workers."""
    handle = runner.job_handle()
    by_path = {_expert_path(runner, key): key for key in needed_experts(runner, cells)}
    experts = [key for path, key in by_path.items() if not path.exists()]  # each path once
    run_jobs(_expert_job, [(handle, *key) for key in experts], runner.workers, "pretrain",
             runner.progress, launcher=runner.launcher)
    if not distill:
        return
    sets = [cell for cell in distilled_cells(cells)
            if not runner.for_cell(cell).synthetic_path(cell).exists()]
    run_jobs(_distill_job, [(handle, cell) for cell in sets], runner.workers, "distill",
             runner.progress, launcher=runner.launcher)


def _expert_path(runner: Runner, key: tuple) -> Path:
    overrides, dataset, target, kind, index = key
    return runner.variant(overrides).expert_path(dataset, split_name(dataset, target), kind, index)


def pretrain_experts(runner: Runner, cells: list[Cell]) -> list[dict]:
    """The experts of the cells that still need work (trained here when missing) and those
    on disk, with their accuracy on the source validation images. Cells whose records are
    complete need no expert: nothing is retrained for them."""
    make_missing(runner, cells_with_work(runner, cells), distill=False)
    rows = []
    for key in needed_experts(runner, cells):
        if _expert_path(runner, key).exists():
            rows.append(_expert_job((runner, *key)))
    return rows


def distill_cells(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Distil every set that cells with missing records need; rows with the first and last
    loss terms of every set on disk."""
    make_missing(runner, cells_with_work(runner, cells))
    return [runner.for_cell(cell).distill_row(cell) for cell in distilled_cells(cells)
            if runner.for_cell(cell).synthetic_path(cell).exists()]


def evaluate_cells(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Train and test every evaluation network the cells still lack; one record each."""
    make_missing(runner, cells_with_work(runner, cells))
    handle, records = runner.job_handle(), load_records(runner.records_path)
    jobs = [(handle, cell, seed) for cell in cells
            for seed in runner.for_cell(cell).seeds_to_run(cell, records)]
    jobs.sort(key=lambda job: -_relative_cost(job[1]))  # longest first: workers end together
    done = []

    def report(job, records):
        done.append(job)
        for record in records:
            print(f"[{len(done)}/{len(jobs)}] {job[1].label} seed {record['seed']}: "
                  f"{record['acc']:.1f} %", flush=True)

    results = run_jobs(_evaluate_job, jobs, runner.workers, "evaluate", runner.progress, report,
                       launcher=runner.launcher)
    return [record for records in results for record in records]


def _relative_cost(cell: Cell) -> float:
    """Rough order of a run's cost: full data trains longest, then ResNet-50, then IPC."""
    per_step = 640 if cell.ipc == 0 else min(cell.ipc, 64)
    return per_step * (4 if cell.net == "resnet50" else 1)


def _runner_for(handle) -> Runner:
    """The runner of a job: the caller's own, or one rebuilt once per worker process."""
    if isinstance(handle, Runner):
        return handle
    cache = worker_cache()
    key = short_hash(handle)
    if key not in cache:
        cache.clear()
        cache[key] = Runner(**handle, progress=False)
    return cache[key]


def _expert_job(job) -> dict:
    handle, overrides, dataset, target, kind, index = job
    runner = _runner_for(handle).variant(overrides)
    return _expert_row(runner, dataset, target, kind, index)


def _expert_row(runner: Runner, dataset: str, target: str, kind: str, index: int) -> dict:
    task = runner.task(dataset, target)
    _, info = runner.expert(dataset, task, kind, index)
    return {"dataset": dataset, "split": task.name, "kind": kind, "index": index,
            "source_val_acc": info["source_val_acc"], "expert_id": info["expert_id"]}


def _distill_job(job) -> dict:
    handle, cell = job
    return _runner_for(handle).for_cell(cell).distill_row(cell)


def _evaluate_job(job) -> list[dict]:
    handle, cell, seed = job
    return _runner_for(handle).for_cell(cell).run_cell(cell, [seed])


def run_pipeline(profile_name: str, data_root=None, datasets=None, targets=None, methods=None,
                 ipcs=None, stages=None, results_dir=None, run_dir=None,
                 progress: bool = True) -> list[dict]:
    runner, cells = open_run(profile_name, data_root, datasets, targets, methods, ipcs, stages,
                             results_dir, run_dir, progress)
    return evaluate_cells(runner, cells)


def stage_tables(runner: Runner) -> dict[str, Table]:
    """Tables of every stage of the profile from the current records, keyed by file stem."""
    records = runner.current_records()
    compare = runner.profile.get("compare_with_paper", False)
    tables = {}
    for stage, settings in runner.profile["stages"].items():
        for dataset in settings["datasets"]:
            targets = settings.get("targets") or runner.profile["datasets"][dataset]["targets"]
            splits = [split_name(dataset, t) for t in targets]
            title = f"{STAGE_TITLES.get(stage, stage)}: {dataset} ({runner.profile['name']} profile)"
            if settings.get("nets"):
                paper = TABLE3 if compare and dataset == "pacs" else None
                tables[f"{stage}_{dataset}"] = cross_architecture_table(
                    records, title, dataset, splits[0],
                    [m.name for m in _stage_methods(settings, None)], settings["ipcs"],
                    settings["nets"], paper)
                continue
            if settings.get("variants"):
                rows = [(method.name, ", ".join(f"{k}={v}" for k, v in overrides) or "reference")
                        for method, overrides in _stage_rows(settings, None)]
                tables[f"{stage}_{dataset}"] = variant_table(records, title, dataset, splits,
                                                             settings["ipcs"], rows)
                continue
            if settings.get("ablation"):
                rows = [(ablation_variant(*row).name, *row) for row in ABLATION_ROWS]
                paper = TABLE2 if compare and dataset == "pacs" else None
                tables[f"{stage}_{dataset}"] = ablation_table(records, title, dataset, splits[0],
                                                              settings["ipcs"], rows, paper)
                continue
            methods = [m.name for m in _stage_methods(settings, None)]
            tables[f"{stage}_{dataset}"] = method_table(
                records, title, dataset, splits, methods, settings["ipcs"],
                full_data=settings.get("full_data", False),
                paper=paper_values(stage, dataset) if compare else None,
                anchors=GPU_FULL_DATA_ANCHORS.get(
                    (dataset, runner.profile["datasets"][dataset].get("resolution")))
                if compare and stage == "table1" else None)
    return tables


STAGE_TITLES = {"table1": "Table 1, leave-one-domain-out accuracy %",
                "table2": "Table 2, loss ablation, accuracy %",
                "table3": "Table 3, cross-architecture accuracy %",
                "table4": "Table 4, in-domain accuracy %",
                "fidelity": "Reference behaviours, one switched off per row, accuracy %"}


def write_tables(profile_name: str, results_dir=None, figures_dir=None) -> list[Path]:
    profile = load_profile(profile_name)
    runner = Runner(profile, results_dir=results_dir, progress=False, device="cpu")
    folder = Path(figures_dir or runner.figures_dir)
    paths = []
    for stem, table in stage_tables(runner).items():
        paths += table.write(folder, stem)
        print(table.markdown())
    return paths
