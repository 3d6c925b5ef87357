"""Evaluating a cell: fresh networks trained on its synthetic set (or, for the full-data
row, on every source training image), tested on the unseen domain and on the source
domains' held-out images, one record per network."""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from ..data import Task
from ..method.models import build_eval_net
from ..method.train import TrainConfig, accuracy, train_classifier, train_classifiers_stacked
from ..settings import EVAL_SEED_OFFSET
from .products import pretraining_config, synthetic_set
from .records import append_record, base_record, seeds_to_run


def full_data_config(runner, dataset: str) -> TrainConfig:
    """How the full-data reference trains: like the experts, for full_data.epochs where
    the profile sets it."""
    config = pretraining_config(runner, dataset)
    epochs = runner.sections.full_data.epochs
    return replace(config, epochs=epochs) if epochs else config


def evaluation_config(runner) -> TrainConfig:
    """The profile's training of the evaluation networks (DSA on)."""
    return runner.sections.evaluate.train_config()


def run_cell(runner, cell, seeds: list[int] | None = None) -> list[dict]:
    """Evaluate the cell for `seeds` (default: every seed without a valid record)."""
    task = runner.task(cell.dataset, cell.target)
    todo = seeds_to_run(runner, cell) if seeds is None else list(seeds)
    if not todo:
        return []
    provenance = {"set_id": None, "set_file": None, "expert_ids": []}
    if cell.ipc == 0:  # full-data reference: every source training image
        images, labels, info = task.train.images, task.train.labels, {}
        config = full_data_config(runner, cell.dataset)
    else:
        synthetic, info = synthetic_set(runner, cell, task)
        images, labels, _ = synthetic.decoded()
        config = evaluation_config(runner)
        provenance = {"set_id": info["set_id"],
                      "set_file": runner.store.synthetic_path(cell).name,
                      "expert_ids": info["expert_ids"]}
    records = []
    for seed, net, seconds in train_eval_nets(runner, cell, task, images, labels, config, todo):
        history = info.get("history") or [{}]
        record = base_record(
            kind="eval", dataset=cell.dataset, split=task.name, seed=seed,
            device=runner.device, stage=cell.stage, method=cell.method.name, ipc=cell.ipc,
            net=cell.net, config=runner.store.config_hash(cell.dataset, cell.ipc),
            overrides=[list(o) for o in cell.overrides],
            acc=accuracy(net, task.test.images, task.test.labels, runner.device),
            source_val_acc=accuracy(net, task.val.images, task.val.labels, runner.device)
            if len(task.val) else None,
            eval_s=round(seconds, 2), pretrain_s=round(info.get("pretrain_s", 0.0), 2),
            distill_s=round(info.get("distill_s", 0.0), 2),
            loss_first=history[0], loss_last=history[-1],
            n_train_images=len(labels), **provenance)
        append_record(runner.records_path, record)
        records.append(record)
    return records


def fresh_eval_net(runner, cell, task: Task, seed: int) -> torch.nn.Module:
    """The untrained evaluation network of one seed (never the expert's initial weights)."""
    model = runner.sections.model
    torch.manual_seed(seed + EVAL_SEED_OFFSET)
    return build_eval_net(cell.net, task.n_classes, task.n_domains, task.train.resolution,
                          model.width, model.stem)


def train_eval_nets(runner, cell, task: Task, images, labels, config: TrainConfig,
                    seeds: list[int]):
    """Yields (seed, trained network, seconds) per seed: one after the other, or all
    together when evaluate.stack_seeds (the same networks up to summation order). Test
    accuracy is taken after each yield, so a sequential cell's record of one seed is
    written before the next seed trains."""
    def fresh(seed):
        return fresh_eval_net(runner, cell, task, seed)
    desc = f"evaluate {cell.method.name} {cell.net}"
    if runner.sections.evaluate.stack_seeds and len(seeds) > 1:
        start = time.time()
        nets = train_classifiers_stacked(
            [fresh(seed) for seed in seeds], images, labels, config,
            [seed + EVAL_SEED_OFFSET for seed in seeds], runner.device,
            progress=runner.progress, desc=f"{desc} seeds {seeds[0]}-{seeds[-1]}")
        seconds = (time.time() - start) / len(seeds)
        yield from ((seed, net, seconds) for seed, net in zip(seeds, nets))
        return
    for seed in seeds:
        start = time.time()
        net = train_classifier(fresh(seed), images, labels, config, seed + EVAL_SEED_OFFSET,
                               runner.device, progress=runner.progress,
                               desc=f"{desc} seed {seed}")
        yield seed, net, time.time() - start
