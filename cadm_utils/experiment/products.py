"""A run's products, made where missing and cached in its store: the experts (trained with
their method's pretraining objective) and the distilled synthetic sets."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from ..data import Task
from ..method.distill import distill
from ..method.mechanism import (head_diagnostics, mask_diagnostics, pooled_block_features,
                                refit_heads)
from ..method.methods import Method
from ..method.models import DomainAwareResNet
from ..method.synthetic import SyntheticSet
from ..method.train import TrainConfig, accuracy, train_classifier
from ..profiles import pretrain_epochs
from ..runtime import product_lock, save_atomic
from .records import append_record, base_record
from .shipped import shipped_state
from .store import content_id


def pretraining_config(runner, dataset: str) -> TrainConfig:
    """How the experts (and by default the full-data reference) train: the profile's
    pretraining length, batch, rate and optimiser protocol, with crop and flip."""
    settings = runner.sections.pretrain
    return TrainConfig(augment="crop_flip", epochs=pretrain_epochs(runner.profile, dataset),
                       batch_size=settings.batch_size, lr=settings.lr,
                       protocol=settings.protocol)


def new_model(runner, task: Task, seed: int) -> DomainAwareResNet:
    torch.manual_seed(seed)  # torch's own start seed differs per process
    model = runner.sections.model
    return DomainAwareResNet(task.n_classes, task.n_domains, model.width,
                             task.train.resolution, model.grl_weight, stem=model.stem)


def expert(runner, dataset: str, task: Task, method: Method,
           index: int = 0) -> tuple[DomainAwareResNet, dict]:
    """Pretrained expert number `index` of the method's pool (seed + index), trained with
    the method's pretraining objective and cached (methods of one expert kind share it).
    Returns the model and its stored info (wall time, source accuracy, content id). Two
    processes that want the same expert train it once (product_lock)."""
    path = runner.store.expert_path(dataset, task.name, method, index)
    with product_lock(path):
        return _expert(runner, dataset, task, method, index, path)


def _expert(runner, dataset: str, task: Task, method: Method, index: int, path):
    seed = runner.profile.seed + index
    model = new_model(runner, task, seed)
    if path.exists():
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        return model.to(runner.device).eval(), state["info"]
    start, curve = time.time(), {"train_loss_by_epoch": [], "source_val_by_epoch": []}
    pretrain = runner.sections.pretrain
    best_val = pretrain.keep == "best_val"

    def source_val(trained) -> float:
        curve["source_val_by_epoch"].append(
            accuracy(trained, task.val.images, task.val.labels, runner.device))
        return curve["source_val_by_epoch"][-1]

    def log_epoch(epoch: int, train_loss: float) -> None:  # the curve 01_pretrain draws
        curve["train_loss_by_epoch"].append(round(train_loss, 4))
        if not best_val:  # keep_best reads source val itself
            source_val(model)
            model.train()

    model = train_classifier(model, task.train.images, task.train.labels,
                             pretraining_config(runner, dataset), seed, runner.device,
                             domains=task.train.domains,
                             loss=method.pretraining_objective(pretrain, runner.sections.masking),
                             progress=runner.progress,
                             desc=f"pretrain {task.name} {method.expert_kind}",
                             keep_best=source_val if best_val else None,
                             log_epoch=log_epoch)
    if method.has_domain_heads and pretrain.heads == "refit":
        refit_heads(model, task)
    info = {"wall_s": time.time() - start, "expert_id": content_id(model.state_dict()),
            "source_val_acc": accuracy(model, task.val.images, task.val.labels, runner.device)}
    info.update(curve)
    if method.has_domain_heads:
        info["heads"] = mechanism(runner, model, task)
    save_atomic({"model": model.state_dict(), "info": info}, path)
    append_record(runner.store.results_dir / "experts.jsonl", base_record(
        kind="expert", dataset=dataset, split=task.name, seed=seed, device=runner.device,
        expert_kind=method.expert_kind, file=path.name, **info))
    return model, info


def mechanism(runner, model: DomainAwareResNet, task: Task) -> list[dict]:
    """Per block (method/mechanism.py, source validation images): the domain heads'
    accuracy, the majority share, a linear probe, Eq. 6's selectivity and the target
    damping at the profile's P_mask."""
    val = pooled_block_features(model, task.val.images)  # once for both
    masks = mask_diagnostics(model, task, runner.sections.masking.p_mask,
                             seed=runner.profile.seed, val=val)
    return [{**heads, **mask} for heads, mask in zip(head_diagnostics(model, task, val), masks)]


def expert_with_heads(runner, dataset: str, task: Task, method: Method,
                      index: int = 0) -> tuple[DomainAwareResNet, dict]:
    """`expert`, with the `mechanism` of an expert with domain heads in its info (computed
    once for an expert saved without it, then stored in its file)."""
    model, info = expert(runner, dataset, task, method, index)
    if method.has_domain_heads and "target_damping" not in (info.get("heads") or [{}])[0]:
        info["heads"] = mechanism(runner, model, task)
        save_atomic({"model": model.state_dict(), "info": info},
                    runner.store.expert_path(dataset, task.name, method, index))
    return model, info


def expert_pool(runner, dataset: str, task: Task, method: Method) -> tuple[list, list[dict]]:
    """NCFM's pool: [(trained, initial)] for the profile's pretrain.experts seeds."""
    pool, infos = [], []
    for index in range(runner.sections.pretrain.experts):
        model, info = expert(runner, dataset, task, method, index)
        pool.append((model, new_model(runner, task, runner.profile.seed + index)))
        infos.append(info)
    return pool, infos


def optimised(runner, cell) -> bool:
    """Whether the cell's set is optimised, and so needs its experts: a distilling method
    at distill.steps > 0 (steps 0 evaluates the set as initialised, the decoded real
    tiles)."""
    return cell.method.distills and runner.sections.distill.steps > 0


def synthetic_set(runner, cell, task: Task) -> tuple[SyntheticSet, dict]:
    """Distilled set of a cell (cached), with wall times, the loss history, its content id
    and its experts' ids: from runs/<profile>/synthetic/, else the repository's shipped
    copy (sets/<profile>/), else made. Two processes that want the same set make it once."""
    final = runner.store.synthetic_path(cell)
    with product_lock(final):
        return _synthetic_set(runner, cell, task, final)


def _synthetic_set(runner, cell, task: Task, final) -> tuple[SyntheticSet, dict]:
    config = runner.store.distill_config(cell.ipc, cell.method)
    if final.exists():
        state = torch.load(final, weights_only=False)
        return SyntheticSet.from_state(state["set"]), state["info"]
    shipped = shipped_state(final.name)
    if shipped is not None:
        save_atomic(shipped, final)
        return SyntheticSet.from_state(shipped["set"]), shipped["info"]
    info, pool = {"pretrain_s": 0.0, "expert_ids": []}, None
    checkpoint = runner.run_dir / "checkpoints" / final.name
    if optimised(runner, cell):
        pool, infos = expert_pool(runner, cell.dataset, task, cell.method)
        info["pretrain_s"] = sum(i["wall_s"] for i in infos)
        info["expert_ids"] = [i["expert_id"] for i in infos]
        if not checkpoint.exists():
            info["extended_from_step"] = extend_shorter_run(runner, cell, checkpoint)
    start = time.time()
    synthetic, history = distill(pool, task, cell.method, config, runner.sections.masking,
                                 runner.profile.seed, runner.device, checkpoint=checkpoint,
                                 progress=runner.progress)
    info.update(distill_s=time.time() - start, steps=config.steps,
                history=history[:: max(1, len(history) // 50)],
                set_id=content_id(synthetic.state()))
    save_atomic({"set": synthetic.state(), "info": info}, final)
    return synthetic, info


def shorter_run(runner, cell) -> tuple[int, Path] | None:
    """(steps, final checkpoint) of the longest finished run of this cell's trajectory that
    is shorter than the cell's: the same cell and settings with only distill.steps smaller.
    No setting of the loop depends on its length and every draw comes from the checkpointed
    generator, so that run's state is this one's after as many steps."""
    steps = runner.sections.distill.steps
    own = runner.store.synthetic_path(cell).name
    prefix = own.rsplit("-", 1)[0] + "-"
    found = None
    for path in (runner.run_dir / "checkpoints").glob(prefix + "*.pt"):
        if path.name == own:
            continue
        done = torch.load(path, weights_only=False)["step"]
        if 0 < done < steps and (found is None or done > found[0]):
            shorter = runner.variant((("distill.steps", done),))
            if shorter.store.synthetic_path(cell).name == path.name:
                found = (done, path)
    return found


def extend_shorter_run(runner, cell, checkpoint: Path) -> int:
    """Start the cell's distillation from `shorter_run`'s final state where there is one
    (copied to the cell's own checkpoint); the steps taken over (0: none)."""
    found = shorter_run(runner, cell)
    if found is None:
        return 0
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".partial")
    shutil.copyfile(found[1], partial)
    partial.replace(checkpoint)
    return found[0]


def distill_row(runner, cell) -> dict:
    """The cell's set (distilled where missing): its shape, first and last loss terms, id."""
    task = runner.task(cell.dataset, cell.target)
    synthetic, info = synthetic_set(runner, cell, task)
    history = info["history"] or [{}]  # a set never optimised has no loss terms
    return {"split": task.name, "method": cell.method.name, "ipc": cell.ipc,
            "images": tuple(synthetic.images.shape), "first": history[0],
            "last": history[-1], "set_id": info["set_id"]}


def expert_heads(runner, dataset: str, task: Task, method: Method,
                 index: int = 0) -> list[dict] | None:
    """The per-block `mechanism` of an expert with domain heads (None for others)."""
    if not method.has_domain_heads:
        return None
    return expert_with_heads(runner, dataset, task, method, index)[1]["heads"]
