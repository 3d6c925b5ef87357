"""How a profile's evaluation length is chosen between the reference codes' two: DC's 300
epochs and DM's 1000 (VICO-UoE/DatasetCondensation main.py, main_DM.py; both train with
evaluate_synset in utils.py: batch 256, SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr
x0.1 after half the epochs, DSA on every batch).

    python benchmarks/tune_eval.py --profile pacs-dm --data-root DATA --targets P \
        --rows mmd,cadm,mmd{init} [--epochs 300,1000] [--out results/tuning/eval-pacs-dm.jsonl]

For every synthetic set of the chosen cells (made where missing) and every candidate length,
fresh networks are trained over the profile's evaluation seeds exactly as the pipeline
trains them; each run records its accuracy on the source domains' held-out images, its
training loss per epoch and its wall time, one JSON line per run. The unseen domain is never
scored here: the choice reads source val, the seed spread, whether the loss has flattened
(the mean of the last tenth of the epochs against the tenth before) and the cost.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from cadm_utils.experiment.evaluation import evaluation_config, fresh_eval_net
from cadm_utils.experiment.parallel import run_jobs
from cadm_utils.experiment.pipeline import _runner_for, open_run
from cadm_utils.experiment.products import synthetic_set
from cadm_utils.method.train import accuracy, cross_entropy, train_classifier
from cadm_utils.runtime import git_commit
from cadm_utils.settings import EVAL_SEED_OFFSET


def loss_flattening(epoch_losses: list[float]) -> float:
    """Relative change of the mean training loss over the last tenth of the epochs against
    the tenth before it (0: flat; -0.3: still falling by 30 %)."""
    tenth = max(1, len(epoch_losses) // 10)
    last = statistics.fmean(epoch_losses[-tenth:])
    before = statistics.fmean(epoch_losses[-2 * tenth:-tenth])
    return (last - before) / before if before else 0.0


def trial(job) -> dict:
    """One evaluation network of one set at one length: source val, loss curve, seconds."""
    handle, cell, epochs, seed = job
    runner = _runner_for(handle).for_cell(cell)
    task = runner.task(cell.dataset, cell.target)
    synthetic, info = synthetic_set(runner, cell, task)
    images, labels, _ = synthetic.decoded()
    config = replace(evaluation_config(runner), epochs=epochs, steps=0)
    batch_losses, epoch_losses = [], []
    batches_per_epoch = -(-len(labels) // config.batch_size)

    def recorded(model, x, y, d, step, generator):
        value = cross_entropy(model, x, y, d, step, generator)
        batch_losses.append(float(value.detach()))
        if len(batch_losses) == batches_per_epoch:
            epoch_losses.append(statistics.fmean(batch_losses))
            batch_losses.clear()
        return value

    start = time.perf_counter()
    net = train_classifier(fresh_eval_net(runner, cell, task, seed), images, labels, config,
                           seed + EVAL_SEED_OFFSET, runner.device, loss=recorded,
                           progress=False)
    seconds = time.perf_counter() - start
    cpu = torch.device("cpu")
    return {"profile": runner.profile.name, "split": task.name, "row": cell.method.name,
            "ipc": cell.ipc, "set_id": info["set_id"], "epochs": epochs, "seed": seed,
            "source_val_acc": round(accuracy(net, task.val.images, task.val.labels, cpu), 2),
            "loss_first": round(epoch_losses[0], 4), "loss_last": round(epoch_losses[-1], 4),
            "loss_flattening": round(loss_flattening(epoch_losses), 4),
            "loss_by_tenth": _by_tenth(epoch_losses),
            "wall_s": round(seconds, 1), "commit": git_commit()}


def _by_tenth(epoch_losses: list[float]) -> list[float]:
    tenth = max(1, len(epoch_losses) // 10)
    return [round(statistics.fmean(epoch_losses[i:i + tenth]), 4)
            for i in range(0, len(epoch_losses), tenth)]


def summary(rows: list[dict]) -> list[str]:
    """One line per (split, row, length): source val mean ± sd over seeds, loss, cost."""
    groups = {}
    for row in rows:
        groups.setdefault((row["split"], row["row"], row["epochs"]), []).append(row)
    lines = ["split | row | epochs | source val mean ± sd (n) | last loss | flattening | s/run"]
    for (split, name, epochs), group in sorted(groups.items()):
        accs = [r["source_val_acc"] for r in group]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(f"{split} | {name} | {epochs} | {statistics.fmean(accs):.1f} ± {sd:.1f} "
                     f"({len(accs)}) | {statistics.fmean(r['loss_last'] for r in group):.3f} | "
                     f"{statistics.fmean(r['loss_flattening'] for r in group):+.3f} | "
                     f"{statistics.fmean(r['wall_s'] for r in group):.0f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--data-root")
    parser.add_argument("--targets")
    parser.add_argument("--stages")
    parser.add_argument("--methods")
    parser.add_argument("--rows", help="comma-separated rows (e.g. mmd,cadm,mmd{init}); "
                                       "default: every row of the chosen cells")
    parser.add_argument("--epochs", default="300,1000")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lengths = [int(e) for e in args.epochs.split(",")]
    runner, cells = open_run(args.profile, args.data_root, targets=args.targets,
                             stages=args.stages, methods=args.methods, progress=False)
    if args.rows:
        cells = [cell for cell in cells if cell.method.name in args.rows.split(",")]
    out = args.out or Path("results/tuning") / f"eval-{args.profile}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["split"], r["row"], r["epochs"], r["seed"])
            for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    handle = runner.job_handle()
    jobs = [(handle, cell, epochs, seed) for epochs in sorted(lengths, reverse=True)
            for cell in cells for seed in range(runner.for_cell(cell).sections.evaluate.seeds)]
    todo = [job for job in jobs if (job[1].split, job[1].method.name, job[2], job[3]) not in done]
    print(f"{len(todo)} of {len(jobs)} runs to do")

    def write(job, row):
        with out.open("a") as stream:
            stream.write(json.dumps(row) + "\n")
        print(f"{row['split']} {row['row']} {row['epochs']} epochs seed {row['seed']}: "
              f"source val {row['source_val_acc']:.1f} %, flattening "
              f"{row['loss_flattening']:+.3f}, {row['wall_s']:.0f} s", flush=True)

    run_jobs(trial, todo, runner.workers, "evaluation trials", False, write)
    print("\n".join(summary([json.loads(line) for line in out.read_text().splitlines()])))


if __name__ == "__main__":
    main()
