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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .data import Task, load_dataset, make_task, split_name
from .distill import DistillConfig, distill
from .errors import ConfigError
from .methods import MaskingConfig, Method, ablation_variant, get_method
from .models import EVAL_NETS, DomainAwareResNet, build_eval_net, resolve_stem
from .parallel import run_jobs, worker_cache
from .paper_numbers import TABLE2, TABLE3, paper_values
from .profiles import REPO_ROOT, load_profile, pretrain_epochs
from .results import (Table, ablation_table, append_record, base_record,
                      cross_architecture_table, latest_per_seed, load_records, method_table)
from .runtime import pick_device, save_atomic
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
        self.masking = MaskingConfig(**profile["masking"])
        self.spec = {"profile": profile, "data_root": data_root, "device": str(self.device),
                     "results_dir": str(self.results_dir), "run_dir": str(self.run_dir)}

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

    def job_handle(self):
        """What a job carries to find this runner: itself in-process, else its settings."""
        return self if self.workers == 1 else self.spec

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
                           p["distill"] if ipc else None, p["masking"], p.get("seed", 0)])

    def config_hash(self, dataset: str, ipc: int) -> str:
        """Everything that determines a cell's numbers; records of another hash are stale.
        (The number of seeds is left out: it decides which records exist, not their values.)"""
        evaluate = {k: v for k, v in self.profile["evaluate"].items() if k != "seeds"}
        return short_hash([self.product_hash(dataset, ipc), evaluate])

    def current_records(self) -> list[dict]:
        """Records made with the profile's present settings and seeds, newest per seed."""
        seeds = self.profile["evaluate"].get("seeds", 3)
        fresh = [r for r in load_records(self.records_path)
                 if r.get("dataset") in self.profile["datasets"] and r.get("seed", 0) < seeds
                 and r.get("config") == self.config_hash(r["dataset"], r.get("ipc", 0))]
        return latest_per_seed(fresh)

    # ------------------------------------------------------------------ products
    def expert(self, dataset: str, task: Task, kind: str) -> tuple[DomainAwareResNet, float]:
        """Pretrained model (Eq. 1 for 'plain', Eq. 10 for 'domain'), cached on disk."""
        settings = dict(self.profile["pretrain"], epochs=pretrain_epochs(self.profile, dataset))
        path = self.expert_path(dataset, task.name, kind)
        model = self.new_model(task, self.profile.get("seed", 0))
        if path.exists():
            state = torch.load(path, weights_only=False)
            model.load_state_dict(state["model"])
            return model.to(self.device).eval(), state["wall_s"]
        start = time.time()
        config = TrainConfig(augment="crop_flip", **settings)
        model = train_classifier(model, task.train.images, task.train.labels, config,
                                 self.profile.get("seed", 0), self.device,
                                 domains=task.train.domains, objective=kind,
                                 progress=self.progress, desc=f"pretrain {task.name} {kind}")
        wall = time.time() - start
        save_atomic({"model": model.state_dict(), "wall_s": wall,
                      "source_val_acc": accuracy(model, task.val.images, task.val.labels,
                                                 self.device)}, path)
        return model, wall

    def expert_path(self, dataset: str, task_name: str, kind: str) -> Path:
        settings = dict(self.profile["pretrain"], epochs=pretrain_epochs(self.profile, dataset))
        key = short_hash([dataset, task_name, kind, self.profile["model"], settings,
                          self.profile["datasets"][dataset], self.profile.get("seed", 0)])
        return self.run_dir / "experts" / f"{dataset}-{_safe(task_name)}-{kind}-{key}.pt"

    def expert_row(self, dataset: str, target: str, kind: str) -> dict:
        """The expert's split and its accuracy on the source validation images (stored with
        the weights when it was trained)."""
        task = self.task(dataset, target)
        path = self.expert_path(dataset, task.name, kind)
        if not path.exists():
            self.expert(dataset, task, kind)
        state = torch.load(path, weights_only=False)
        return {"dataset": dataset, "split": task.name, "kind": kind,
                "source_val_acc": state["source_val_acc"]}

    def new_model(self, task: Task, seed: int) -> DomainAwareResNet:
        torch.manual_seed(seed)  # torch's own start seed differs per process
        settings = self.profile["model"]
        return DomainAwareResNet(task.n_classes, task.n_domains, settings["width"],
                                 task.train.resolution, settings.get("grl_weight", 0.25),
                                 stem=settings.get("stem", "auto"))

    def synthetic_path(self, cell: Cell) -> Path:
        config = self.distill_config(cell.ipc, cell.method)
        task_name = split_name(cell.dataset, cell.target)
        key = short_hash([cell.dataset, task_name, cell.method.key, asdict(config),
                          self.masking, self.product_hash(cell.dataset, cell.ipc)])
        stem = f"{cell.dataset}-{_safe(task_name)}-{_safe(cell.method.name)}-ipc{cell.ipc}-{key}"
        return self.run_dir / "synthetic" / f"{stem}.pt"

    def synthetic_set(self, cell: Cell, task: Task) -> tuple[SyntheticSet, dict]:
        """Distilled set of a cell (cached), with wall times and the loss history."""
        config = self.distill_config(cell.ipc, cell.method)
        final = self.synthetic_path(cell)
        stem = final.stem
        if final.exists():
            state = torch.load(final, weights_only=False)
            return SyntheticSet.from_state(state["set"]), state["info"]
        info = {"pretrain_s": 0.0}
        model = None
        if cell.method.distill:
            model, info["pretrain_s"] = self.expert(cell.dataset, task, cell.method.pretrain)
        start = time.time()
        synthetic, history = distill(model, task, cell.method, config, self.masking,
                                     self.profile.get("seed", 0), self.device,
                                     checkpoint=self.run_dir / "checkpoints" / f"{stem}.pt",
                                     progress=self.progress)
        info.update(distill_s=time.time() - start, steps=config.steps,
                    history=history[:: max(1, len(history) // 50)])
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
                "last": history[-1]}

    def seeds_to_run(self, cell: Cell, records: list[dict] | None = None) -> list[int]:
        """The cell's seeds without a record of the present settings; `records` saves
        reading the records file again when many cells are checked."""
        if records is None:
            records = load_records(self.records_path)
        config = self.config_hash(cell.dataset, cell.ipc)
        task_name = split_name(cell.dataset, cell.target)
        finished = {r["seed"] for r in records
                    if r.get("config") == config and r.get("method") == cell.method.name
                    and r.get("dataset") == cell.dataset and r.get("split") == task_name
                    and r.get("ipc") == cell.ipc and r.get("net") == cell.net}
        return [s for s in range(self.profile["evaluate"].get("seeds", 3)) if s not in finished]

    def run_cell(self, cell: Cell, seeds: list[int] | None = None) -> list[dict]:
        """Evaluate the cell for `seeds` (default: every seed without a record yet)."""
        task = self.task(cell.dataset, cell.target)
        todo = self.seeds_to_run(cell) if seeds is None else list(seeds)
        if not todo:
            return []
        if cell.ipc == 0:  # full-data reference: every source training image
            images, labels, info = task.train.images, task.train.labels, {}
            settings = dict(self.profile["pretrain"],
                            epochs=pretrain_epochs(self.profile, cell.dataset))
            config = TrainConfig(augment="crop_flip", **settings)
        else:
            synthetic, info = self.synthetic_set(cell, task)
            images, labels, _ = synthetic.decoded()
            config = self.evaluation_config()
        records = []
        for seed in todo:
            start = time.time()
            torch.manual_seed(seed)
            fresh = build_eval_net(cell.net, task.n_classes, task.n_domains,
                                   task.train.resolution, self.profile["model"]["width"],
                                   self.profile["model"].get("stem", "auto"))
            net = train_classifier(fresh, images, labels, config, seed, self.device,
                                   progress=self.progress,
                                   desc=f"evaluate {cell.method.name} {cell.net} seed {seed}")
            record = base_record(
                kind="eval", dataset=cell.dataset, split=task.name, seed=seed,
                device=self.device, stage=cell.stage, method=cell.method.name, ipc=cell.ipc,
                net=cell.net, config=self.config_hash(cell.dataset, cell.ipc),
                acc=accuracy(net, task.test.images, task.test.labels, self.device),
                source_val_acc=accuracy(net, task.val.images, task.val.labels, self.device)
                if len(task.val) else None,
                eval_s=round(time.time() - start, 2),
                pretrain_s=round(info.get("pretrain_s", 0.0), 2),
                distill_s=round(info.get("distill_s", 0.0), 2),
                n_train_images=len(labels))
            append_record(self.records_path, record)
            records.append(record)
        return records


def _safe(name: str) -> str:
    return name.replace("→", "-to-").replace("[", "_").replace("]", "").replace(",", "+")


def _split_arg(value, default):
    if value is None:
        return list(default)
    if isinstance(value, (int, float)):  # papermill turns "-p ipcs 10" into an int
        return [value]
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return list(value)


def plan_cells(profile: dict, datasets=None, targets=None, methods=None, ipcs=None,
               stages=None) -> list[Cell]:
    """All cells of the chosen stages, filtered; raises ConfigError on unknown names."""
    cells = []
    stage_settings = profile["stages"]
    for stage in _split_arg(stages, stage_settings):
        if stage not in stage_settings:
            raise ConfigError(f"unknown stage '{stage}': profile has {', '.join(stage_settings)}")
        settings = stage_settings[stage]
        _check_nets(settings)
        for dataset in _split_arg(datasets, settings["datasets"]):
            if dataset not in profile["datasets"]:
                raise ConfigError(f"data set '{dataset}' is not in the profile "
                                  f"(has {', '.join(profile['datasets'])})")
            if dataset not in settings["datasets"]:
                continue
            for target in _split_arg(targets, []):
                split_name(dataset, target)  # raises on an unknown domain
            stage_targets = settings.get("targets") or profile["datasets"][dataset]["targets"]
            chosen = _split_arg(targets, stage_targets)
            if stage_targets == ["in-domain"]:
                chosen = stage_targets  # Table 4 has no target to choose
            for target in chosen:
                if target not in stage_targets:
                    continue
                for method in _stage_methods(settings, methods):
                    for ipc in _split_arg(ipcs, settings["ipcs"]):
                        for net in settings.get("nets", ["resnet18"]):
                            cells.append(Cell(stage, dataset, target, method, int(ipc), net))
                if settings.get("full_data") and (methods is None or "full" in str(methods)):
                    cells.append(Cell(stage, dataset, target, Method("full", distill=False), 0))
    return cells


def _check_nets(settings: dict) -> None:
    for net in settings.get("nets", []):
        if net not in EVAL_NETS:
            raise ConfigError(f"unknown evaluation network '{net}': "
                              f"expected one of {', '.join(EVAL_NETS)}")


def _stage_methods(settings: dict, chosen) -> list[Method]:
    """The stage's methods in profile order, restricted to `chosen` (names checked)."""
    if settings.get("ablation"):
        return [ablation_variant(*row) for row in ABLATION_ROWS]
    wanted = _split_arg(chosen, settings["methods"])
    for name in wanted:
        if name != "full":
            get_method(name)  # raises on an unknown name
    return [get_method(m) for m in settings["methods"] if m in wanted]


def validate_cells(runner: Runner, cells: list[Cell]) -> None:
    """Everything that can fail before long work: data, targets, IPC, settings."""
    runner.workers  # raises on a bad number
    resolve_stem(runner.profile["model"].get("stem", "auto"), 64)
    runner.evaluation_config()
    for cell in cells:
        task = runner.task(cell.dataset, cell.target)
        if cell.ipc:
            config = runner.distill_config(cell.ipc, cell.method)
            check_ipc(task.train, task.source_domains, cell.ipc, config.factor)


def open_run(profile_name, data_root=None, datasets=None, targets=None, methods=None, ipcs=None,
             stages=None, results_dir=None, run_dir=None, progress: bool = True):
    """Load the profile, plan the chosen cells and check them all before any long work."""
    profile = load_profile(profile_name)
    runner = Runner(profile, data_root, results_dir, run_dir, progress=progress)
    cells = plan_cells(profile, datasets, targets, methods, ipcs, stages)
    if not cells:
        raise ConfigError("no cell matches the chosen data sets, targets, methods and IPCs")
    validate_cells(runner, cells)
    return runner, cells


def needed_experts(cells: list[Cell]) -> list[tuple[str, str, str]]:
    return sorted({(c.dataset, c.target, c.method.pretrain) for c in cells if c.method.distill})


def distilled_cells(cells: list[Cell]) -> list[Cell]:
    """One cell per synthetic set (a set shared by two tables is distilled once)."""
    unique = {(c.dataset, c.target, c.method, c.ipc): c for c in cells
              if c.ipc and c.method.distill}
    return list(unique.values())


def make_missing(runner: Runner, cells: list[Cell], distill: bool = True) -> None:
    """Train the experts (and, with `distill`, distil the sets) that are not on disk yet,
    in parallel where the profile asks for workers; finished products are not touched and
    start no process."""
    handle = runner.job_handle()
    experts = [key for key in needed_experts(cells)
               if not runner.expert_path(key[0], split_name(key[0], key[1]), key[2]).exists()]
    run_jobs(_expert_job, [(handle, *key) for key in experts], runner.workers, "pretrain",
             runner.progress)
    if not distill:
        return
    sets = [cell for cell in distilled_cells(cells) if not runner.synthetic_path(cell).exists()]
    run_jobs(_distill_job, [(handle, cell) for cell in sets], runner.workers, "distill",
             runner.progress)


def pretrain_experts(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Every expert the cells need (one per split and pretraining kind), with its accuracy
    on the source validation images."""
    make_missing(runner, cells, distill=False)
    return [runner.expert_row(*key) for key in needed_experts(cells)]


def distill_cells(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Distil every cell that needs it (experts first); rows with the first and last loss
    terms."""
    make_missing(runner, cells)
    return [runner.distill_row(cell) for cell in distilled_cells(cells)]


def evaluate_cells(runner: Runner, cells: list[Cell]) -> list[dict]:
    """Train and test every evaluation network the cells still lack; one record each."""
    make_missing(runner, cells)
    handle, records = runner.job_handle(), load_records(runner.records_path)
    jobs = [(handle, cell, seed) for cell in cells for seed in runner.seeds_to_run(cell, records)]
    jobs.sort(key=lambda job: -_relative_cost(job[1]))  # longest first: workers end together
    done = []

    def report(job, records):
        done.append(job)
        for record in records:
            print(f"[{len(done)}/{len(jobs)}] {job[1].label} seed {record['seed']}: "
                  f"{record['acc']:.1f} %", flush=True)

    results = run_jobs(_evaluate_job, jobs, runner.workers, "evaluate", runner.progress, report)
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
    handle, dataset, target, kind = job
    return _runner_for(handle).expert_row(dataset, target, kind)


def _distill_job(job) -> dict:
    handle, cell = job
    return _runner_for(handle).distill_row(cell)


def _evaluate_job(job) -> list[dict]:
    handle, cell, seed = job
    return _runner_for(handle).run_cell(cell, [seed])


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
                paper=paper_values(stage, dataset) if compare else None)
    return tables


STAGE_TITLES = {"table1": "Table 1, leave-one-domain-out accuracy %",
                "table2": "Table 2, loss ablation, accuracy %",
                "table3": "Table 3, cross-architecture accuracy %",
                "table4": "Table 4, in-domain accuracy %"}


def write_tables(profile_name: str, results_dir=None, figures_dir=None) -> list[Path]:
    profile = load_profile(profile_name)
    runner = Runner(profile, results_dir=results_dir, progress=False, device="cpu")
    folder = Path(figures_dir or runner.figures_dir)
    paths = []
    for stem, table in stage_tables(runner).items():
        paths += table.write(folder, stem)
        print(table.markdown())
    return paths
