"""The product store of a profile: its experts and synthetic sets under runs/<profile>/
(each keyed by everything that determines it), and the evaluation records of its cells in
results/<profile>/records.jsonl. A second run reuses what is there; an interrupted run
resumes where it stopped."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..data import Task, load_dataset, make_task, split_name
from ..errors import ConfigError
from ..method.distill import DistillConfig, distill
from ..method.masking import MaskingConfig
from ..method.methods import Method
from ..method.mechanism import (head_diagnostics, mask_diagnostics, pooled_block_features,
                                refit_heads)
from ..method.models import DomainAwareResNet, build_eval_net
from ..method.synthetic import SyntheticSet
from ..method.train import (TrainConfig, accuracy, train_classifier,
                            train_classifiers_stacked)
from ..profiles import REPO_ROOT, pretrain_epochs
from ..runtime import pick_device, save_atomic, set_precision, use_cuda_path
from ..settings import (EVAL_SEED_OFFSET, HOW_NOT_WHAT, code_constants, key_view,
                        with_overrides)
from .cells import Cell
from .records import (append_record, base_record, cell_key, latest_per_seed, load_records,
                      matching)


def short_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


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
        if not method.distills:
            settings["factor"] = 1  # random baseline: whole real images
        return DistillConfig(ipc=ipc, **settings)

    def product_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines the experts and synthetic sets of a data set."""
        p = self.profile
        return short_hash([p["datasets"][dataset], p["model"], key_view("pretrain", p["pretrain"]),
                           key_view("distill", p["distill"]) if ipc else None, p["masking"],
                           p["seed"], p["precision"], code_constants()])

    def config_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines a cell's numbers; records of another hash are stale.
        (HOW_NOT_WHAT is left out: which records exist and how they are computed, not their
        values.)"""
        parts = [self.product_hash(dataset, ipc), key_view("evaluate", self.evaluation_values())]
        full_data = key_view("full_data", self.profile["full_data"])
        if ipc == 0 and full_data:  # the full-data row's own length, where one is set
            parts.append(full_data)
        return short_hash(parts)

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
            groups.setdefault(cell_key(r), []).append(r)
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
    def expert_settings(self, dataset: str, method: Method) -> dict:
        """The pretraining settings that make the method's expert (the method chooses; CADM's
        includes its masking)."""
        settings = {k: v for k, v in key_view("pretrain", self.profile["pretrain"]).items()
                    if k != "experts"}
        settings["epochs"] = pretrain_epochs(self.profile, dataset)
        return method.expert_settings(settings, self.profile["masking"])

    def expert_path(self, dataset: str, task_name: str, method: Method, index: int = 0) -> Path:
        kind = method.expert_kind
        key = short_hash([dataset, task_name, kind, self.profile["model"],
                          self.expert_settings(dataset, method),
                          self.profile["datasets"][dataset], self.profile["seed"] + index,
                          self.profile["precision"], code_constants()])
        # The key holds seed + index, so pool member N of seed 0 and member 0 of seed N are
        # one file. Files of members >= 1 used to carry "-N" as well; those are still read.
        folder, stem = self.run_dir / "experts", f"{dataset}-{_safe(task_name)}-{kind}"
        path = folder / f"{stem}-{key}.pt"
        legacy = folder / f"{stem}-{index}-{key}.pt"
        return legacy if index and not path.exists() and legacy.exists() else path

    def expert(self, dataset: str, task: Task, method: Method,
               index: int = 0) -> tuple[DomainAwareResNet, dict]:
        """Pretrained expert number `index` of the method's pool (seed + index), trained with
        the method's pretraining objective and cached on disk (methods of one expert kind
        share it). Returns the model and its stored info (wall time, source accuracy,
        content id)."""
        settings = self.expert_settings(dataset, method)
        path = self.expert_path(dataset, task.name, method, index)
        seed = self.profile["seed"] + index
        model = self.new_model(task, seed)
        if path.exists():
            state = torch.load(path, weights_only=False)
            model.load_state_dict(state["model"])
            return model.to(self.device).eval(), state["info"]
        start = time.time()
        config = self.pretraining_config(dataset)
        curve: list[float] = []

        def source_val(trained) -> float:
            curve.append(accuracy(trained, task.val.images, task.val.labels, self.device))
            return curve[-1]

        best_val = self.profile["pretrain"]["keep"] == "best_val"
        model = train_classifier(model, task.train.images, task.train.labels, config, seed,
                                 self.device, domains=task.train.domains,
                                 loss=method.pretraining_objective(settings, self.masking),
                                 progress=self.progress,
                                 desc=f"pretrain {task.name} {method.expert_kind}",
                                 keep_best=source_val if best_val else None)
        if settings.get("heads") == "refit":
            refit_heads(model, task)
        info = {"wall_s": time.time() - start, "expert_id": content_id(model.state_dict()),
                "source_val_acc": accuracy(model, task.val.images, task.val.labels,
                                           self.device)}
        if best_val:
            info["source_val_by_epoch"] = curve
        if method.expert_kind == "domain":
            info["heads"] = self.mechanism(model, task)
        save_atomic({"model": model.state_dict(), "info": info}, path)
        return model, info

    def mechanism(self, model: DomainAwareResNet, task: Task) -> list[dict]:
        """Per block (method/mechanism.py, source validation images): the domain heads'
        accuracy, the majority share, a linear probe, Eq. 6's selectivity and the target
        damping at the profile's P_mask."""
        val = pooled_block_features(model, task.val.images)  # once for both
        masks = mask_diagnostics(model, task, self.masking.p_mask, seed=self.profile["seed"],
                                 val=val)
        return [{**heads, **mask} for heads, mask in zip(head_diagnostics(model, task, val), masks)]

    def expert_heads(self, dataset: str, task: Task, method: Method,
                     index: int = 0) -> list[dict] | None:
        """`mechanism` of an expert with domain heads (None for others); computed once for
        an expert saved without it, then stored in its file."""
        if method.expert_kind != "domain":
            return None
        model, info = self.expert(dataset, task, method, index)
        if "target_damping" not in (info.get("heads") or [{}])[0]:
            path = self.expert_path(dataset, task.name, method, index)
            info["heads"] = self.mechanism(model, task)
            save_atomic({"model": model.state_dict(), "info": info}, path)
        return info["heads"]

    def expert_pool(self, dataset: str, task: Task, method: Method) -> tuple[list, list[dict]]:
        """NCFM's pool: [(trained, initial)] for the profile's pretrain.experts seeds."""
        pool, infos = [], []
        for index in range(self.profile["pretrain"]["experts"]):
            model, info = self.expert(dataset, task, method, index)
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
        key = short_hash([cell.dataset, task_name, cell.method.key,
                          key_view("distill", asdict(config)),
                          self.masking, self.product_hash(cell.dataset, cell.ipc)])
        stem = f"{cell.dataset}-{_safe(task_name)}-{_safe(cell.method.family)}-ipc{cell.ipc}-{key}"
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
        if cell.method.distills:
            pool, infos = self.expert_pool(cell.dataset, task, cell.method)
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
    def pretraining_config(self, dataset: str) -> TrainConfig:
        """How the experts and the full-data reference train: the profile's pretraining
        length, batch, rate and optimiser protocol, with crop and flip."""
        settings = self.profile["pretrain"]
        return TrainConfig(augment="crop_flip", epochs=pretrain_epochs(self.profile, dataset),
                           batch_size=settings["batch_size"], lr=settings["lr"],
                           protocol=settings["protocol"])

    def full_data_config(self, dataset: str) -> TrainConfig:
        """How the full-data reference trains: like the experts, for full_data.epochs where
        the profile sets it."""
        config = self.pretraining_config(dataset)
        epochs = self.profile["full_data"]["epochs"]
        return replace(config, epochs=epochs) if epochs else config

    def evaluation_values(self) -> dict:
        """The evaluate settings that decide an evaluation's numbers (HOW_NOT_WHAT left out)."""
        return {k: v for k, v in self.profile["evaluate"].items() if k not in HOW_NOT_WHAT}

    def evaluation_config(self) -> TrainConfig:
        """The profile's training of the evaluation networks (DSA on)."""
        return TrainConfig(augment="dsa", **self.evaluation_values())

    def distill_row(self, cell: Cell) -> dict:
        task = self.task(cell.dataset, cell.target)
        synthetic, info = self.synthetic_set(cell, task)
        history = info["history"]
        return {"split": task.name, "method": cell.method.name, "ipc": cell.ipc,
                "images": tuple(synthetic.images.shape), "first": history[0],
                "last": history[-1], "set_id": info["set_id"]}

    def cell_records(self, cell: Cell, records: list[dict]) -> list[dict]:
        return matching(records, config=self.config_hash(cell.dataset, cell.ipc),
                        dataset=cell.dataset, split=split_name(cell.dataset, cell.target),
                        method=cell.method.name, ipc=cell.ipc, net=cell.net)

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
            config = self.full_data_config(cell.dataset)
        else:
            synthetic, info = self.synthetic_set(cell, task)
            images, labels, _ = synthetic.decoded()
            config = self.evaluation_config()
            provenance = {"set_id": info["set_id"], "set_file": self.synthetic_path(cell).name,
                          "expert_ids": info["expert_ids"]}
        records = []
        for seed, net, seconds in self.train_eval_nets(cell, task, images, labels, config, todo):
            history = info.get("history") or [{}]
            record = base_record(
                kind="eval", dataset=cell.dataset, split=task.name, seed=seed,
                device=self.device, stage=cell.stage, method=cell.method.name, ipc=cell.ipc,
                net=cell.net, config=self.config_hash(cell.dataset, cell.ipc),
                overrides=[list(o) for o in cell.overrides],
                acc=accuracy(net, task.test.images, task.test.labels, self.device),
                source_val_acc=accuracy(net, task.val.images, task.val.labels, self.device)
                if len(task.val) else None,
                eval_s=round(seconds, 2),
                pretrain_s=round(info.get("pretrain_s", 0.0), 2),
                distill_s=round(info.get("distill_s", 0.0), 2),
                loss_first=history[0], loss_last=history[-1],
                n_train_images=len(labels), **provenance)
            append_record(self.records_path, record)
            records.append(record)
        return records

    def train_eval_nets(self, cell: Cell, task: Task, images, labels, config: TrainConfig,
                        seeds: list[int]):
        """Yields (seed, trained network, seconds) per seed: one after the other, or all
        together when evaluate.stack_seeds (the same networks up to summation order).
        Test accuracy is taken after each yield, so a sequential cell's record of one seed
        is written before the next seed trains."""
        def fresh(seed):
            torch.manual_seed(seed + EVAL_SEED_OFFSET)  # never the expert's initial weights
            return build_eval_net(cell.net, task.n_classes, task.n_domains,
                                  task.train.resolution, self.profile["model"]["width"],
                                  self.profile["model"]["stem"])
        desc = f"evaluate {cell.method.name} {cell.net}"
        if self.profile["evaluate"]["stack_seeds"] and len(seeds) > 1:
            start = time.time()
            nets = train_classifiers_stacked(
                [fresh(seed) for seed in seeds], images, labels, config,
                [seed + EVAL_SEED_OFFSET for seed in seeds], self.device,
                progress=self.progress, desc=f"{desc} seeds {seeds[0]}-{seeds[-1]}")
            seconds = (time.time() - start) / len(seeds)
            yield from ((seed, net, seconds) for seed, net in zip(seeds, nets))
            return
        for seed in seeds:
            start = time.time()
            net = train_classifier(fresh(seed), images, labels, config, seed + EVAL_SEED_OFFSET,
                                   self.device, progress=self.progress,
                                   desc=f"{desc} seed {seed}")
            yield seed, net, time.time() - start


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
