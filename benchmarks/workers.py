"""Throughput of independent training jobs: one process with all cores' threads against
`--workers` spawned single-thread processes, measured side by side in one run.

    python benchmarks/workers.py [--jobs 8] [--steps 60] [--batch 50] [--stem strided]

Each job trains a fresh width-8 ResNet-18 on random 32 px images for `--steps` SGD steps
(the shape of a smoke-profile evaluation run at IPC 10). Prints jobs per minute for both
and their ratio."""
from __future__ import annotations

import argparse
import time

import torch

from cadm_utils.experiment.parallel import run_jobs, threads_per_worker
from cadm_utils.method.models import build_eval_net
from cadm_utils.method.train import TrainConfig, train_classifier


def training_job(job: tuple) -> float:
    seed, steps, batch, stem = job
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(batch) % 5
    torch.manual_seed(seed)
    model = build_eval_net("resnet18", 5, 4, 32, 8, stem)
    start = time.perf_counter()
    train_classifier(model, images, labels, TrainConfig(steps=steps, batch_size=64,
                                                        augment="dsa"),
                     seed, torch.device("cpu"), progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--stem", default="strided")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    jobs = [(seed, args.steps, args.batch, args.stem) for seed in range(args.jobs)]
    rates = {}
    for workers in (1, args.workers):
        start = time.perf_counter()
        run_jobs(training_job, jobs, workers, progress=False)
        rates[workers] = 60 * args.jobs / (time.perf_counter() - start)
        print(f"{workers} process(es), {threads_per_worker(workers)} thread(s) "
              f"each: {rates[workers]:.1f} jobs/min", flush=True)
    print(f"ratio {args.workers} workers / 1: {rates[args.workers] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
