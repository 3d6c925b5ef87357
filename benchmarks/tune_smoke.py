"""How the smoke profile's training settings were chosen: accuracy on the held-out images
of the *source* domains of the ACS→P split (the target domain P is never loaded into any
number printed here), and wall time, for the candidate settings.

    python benchmarks/tune_smoke.py [--out results/tuning/smoke.jsonl]
    python benchmarks/tune_smoke.py --lengths|--budget [--out results/tuning/smoke.jsonl]

Experts: ResNet-18, width 8, 32 px, pretrained with each objective for E epochs at lr η.
Evaluation: fresh networks trained for 150 steps with DSA on 10 real source images per
class (the Random baseline at IPC 10), mean over 3 seeds. One process, two threads.

--lengths: the lengths that decide the profile's wall time, on every split (4 leave-one-out
splits and in-domain), two single-thread workers: the full-data reference (ResNet-18 on every
source training image, crop and flip, lr 0.02, batch 64, DM's schedule) for E epochs, seed 0;
and the evaluation of random real images (IPC 1 and 10) for S steps, seeds 0 and 1.
--budget: cheaper evaluations the same way (batch 32; 38 steps, the IPC-1 length of DM's
epoch-based evaluation, on 4 images per class, the size of a decoded IPC-1 set).
Target-domain images are never scored.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cadm_utils.data import load_dataset, make_task
from cadm_utils.experiment.parallel import run_jobs
from cadm_utils.method.masking import MaskingConfig
from cadm_utils.method.methods import METHODS
from cadm_utils.method.models import DomainAwareResNet, build_eval_net
from cadm_utils.method.pretraining import PretrainConfig
from cadm_utils.method.train import TrainConfig, accuracy, train_classifier
from cadm_utils.runtime import git_commit

CPU = torch.device("cpu")
EXPERTS = [  # (objective, epochs, lr, stem)
    ("plain", 16, 0.02, "small"), ("plain", 16, 0.02, "strided"),
    ("domain", 16, 0.05, "strided"), ("domain", 32, 0.05, "strided"),
    ("domain", 16, 0.02, "strided"), ("domain", 32, 0.02, "strided"),
    ("irm", 32, 0.02, "strided"), ("fact", 16, 0.02, "strided"),
]
EVALUATIONS = [  # (net, lr)
    ("resnet18", 0.01), ("resnet18", 0.05), ("alexnet", 0.01), ("alexnet", 0.05),
    ("convnet", 0.05), ("vgg11", 0.05),
]


def objective_of(kind: str):
    """The pretraining objective of the registered method with this expert kind (the
    'domain' expert without DomainDrop's masks, as tuned at the time)."""
    method = next(m for m in METHODS.values() if m.expert_kind == kind)
    return method.pretraining_objective(PretrainConfig(masked=False), MaskingConfig())


def expert_row(task, objective, epochs, lr, stem) -> dict:
    torch.manual_seed(0)
    model = DomainAwareResNet(task.n_classes, task.n_domains, 8, 32, stem=stem)
    start = time.perf_counter()
    model = train_classifier(model, task.train.images, task.train.labels,
                             TrainConfig(epochs=epochs, lr=lr, batch_size=64), 0, CPU,
                             domains=task.train.domains, progress=False,
                             loss=objective_of(objective))
    return {"kind": "expert", "objective": objective, "epochs": epochs, "lr": lr, "stem": stem,
            "wall_s": round(time.perf_counter() - start, 1),
            "source_val_acc": round(accuracy(model, task.val.images, task.val.labels, CPU), 1)}


def evaluation_row(task, net, lr, ipc: int = 10, steps: int = 150) -> dict:
    generator = torch.Generator().manual_seed(1)
    labels = task.train.labels
    index = torch.cat([torch.nonzero(labels == c).flatten()[
        torch.randperm(int((labels == c).sum()), generator=generator)[:ipc]]
        for c in range(task.n_classes)])
    accs, start = [], time.perf_counter()
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_eval_net(net, task.n_classes, task.n_domains, 32, 8, "strided")
        model = train_classifier(model, task.train.images[index], labels[index],
                                 TrainConfig(steps=steps, lr=lr, batch_size=64, augment="dsa"),
                                 seed, CPU, progress=False)
        accs.append(accuracy(model, task.val.images, task.val.labels, CPU))
    return {"kind": "evaluation", "net": net, "lr": lr, "ipc": ipc, "steps": steps,
            "wall_s": round((time.perf_counter() - start) / 3, 1),
            "source_val_acc": round(sum(accs) / len(accs), 1)}


FULL_DATA_EPOCHS = (16, 24, 32, 48)
EVALUATION_STEPS = (75, 100, 150)
SPLITS = ("A", "C", "P", "S", "in-domain")


def source_task(target: str):
    task = make_task(load_dataset("embedded", resolution=32, progress=False), target)
    task.test = None  # nothing here may look at the target domain
    return task


def length_row(job: tuple) -> dict:
    """One run of --lengths: ("full", target, epochs, seed) or ("eval", target, steps, ipc,
    seed), scored on the source domains' held-out images."""
    kind, target, length, *rest = job
    task = source_task(target)
    start = time.perf_counter()
    if kind == "full":
        seed, = rest
        torch.manual_seed(seed)
        model = DomainAwareResNet(task.n_classes, task.n_domains, 8, 32, stem="strided")
        model = train_classifier(model, task.train.images, task.train.labels,
                                 TrainConfig(epochs=length, lr=0.02, batch_size=64), seed, CPU,
                                 progress=False)
        row = {"kind": "full_data", "epochs": length, "seed": seed}
    else:
        ipc, seed, batch = rest
        row = {"kind": "evaluation_length", "steps": length, "ipc": ipc, "seed": seed}
        if batch != 64:
            row["batch_size"] = batch
        model = random_set_model(task, ipc, length, seed, batch)
    return {**row, "split": task.name, "wall_s": round(time.perf_counter() - start, 1),
            "source_val_acc": round(accuracy(model, task.val.images, task.val.labels, CPU), 2)}


def random_set_model(task, ipc: int, steps: int, seed: int, batch: int = 64):
    """ResNet-18 trained with DSA at lr 0.05 on `ipc` random real source images per class
    (drawn with generator seed 1, as evaluation_row does)."""
    generator = torch.Generator().manual_seed(1)
    labels = task.train.labels
    index = torch.cat([torch.nonzero(labels == c).flatten()[
        torch.randperm(int((labels == c).sum()), generator=generator)[:ipc]]
        for c in range(task.n_classes)])
    torch.manual_seed(seed)
    model = build_eval_net("resnet18", task.n_classes, task.n_domains, 32, 8, "strided")
    return train_classifier(model, task.train.images[index], labels[index],
                            TrainConfig(steps=steps, lr=0.05, batch_size=batch, augment="dsa"),
                            seed, CPU, progress=False)


def length_rows() -> list[dict]:
    jobs = [("full", t, e, 0) for e in FULL_DATA_EPOCHS for t in SPLITS]
    jobs += [("eval", t, s, ipc, seed, 64) for s in EVALUATION_STEPS for ipc in (1, 10)
             for t in SPLITS for seed in (0, 1)]
    jobs.sort(key=lambda job: job[0] != "full")  # the long runs first
    return run_jobs(length_row, jobs, workers=2, desc="lengths")


# --budget: cheaper evaluations for the smoke profile's time budget. A decoded IPC-1 set
# holds 4 images per class (ρ = 2): 4 random real images per class stand in for it; DM's
# epoch-based evaluation at 38 epochs gives it 38 steps (an IPC-10 set 152).
BUDGET_EVALUATIONS = [(150, 10, 32), (38, 4, 64), (150, 4, 64), (100, 10, 32)]


def budget_rows() -> list[dict]:
    jobs = [("eval", t, steps, ipc, seed, batch) for steps, ipc, batch in BUDGET_EVALUATIONS
            for t in SPLITS for seed in (0, 1)]
    return run_jobs(length_row, jobs, workers=2, desc="budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="append the rows to this JSON-lines file")
    parser.add_argument("--lengths", action="store_true",
                        help="full-data epochs and evaluation steps on every split")
    parser.add_argument("--budget", action="store_true",
                        help="cheaper evaluations (batch, epoch-based lengths) on every split")
    args = parser.parse_args()
    if args.lengths:
        rows = length_rows()
    elif args.budget:
        rows = budget_rows()
    else:
        torch.set_num_threads(2)
        task = source_task("P")
        rows = [expert_row(task, *setting) for setting in EXPERTS]
        rows += [evaluation_row(task, *setting) for setting in EVALUATIONS]
    commit = git_commit()
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            for row in rows:
                handle.write(json.dumps({"split": "ACS→P", **row, "commit": commit}) + "\n")


if __name__ == "__main__":
    main()
