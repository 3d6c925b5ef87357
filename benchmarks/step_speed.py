"""Side-by-side timings, all measured in this run (PACS shape by default: 7 classes,
3 source domains, 64 px, IPC 10 with ρ = 2, 128 real images per class):

  distillation  one step of `mmd` and `cadm` (a matching and a calibration phase,
                interpolated expert, NCFM augmentation) in both loops: one optimiser step
                on all classes (`all`) and NCFM's step per class and phase (`per_class`);
  evaluation    one SGD step of the evaluation seeds' ResNet-18s (batch 256 on the decoded
                IPC-10 set), one seed after the other vs stacked (evaluate.stack_seeds);
  host syncs    with --sync-audit on CUDA: the operations that wait for the GPU inside
                a few distillation and evaluation steps (torch.cuda.set_sync_debug_mode).

    python benchmarks/step_speed.py [--device cuda] [--width 64] [--steps 50] [--sync-audit]
                                    [--out results/step_speed.jsonl]

With --out, the timings are appended as one JSON line; `python -m cadm_utils check` estimates
a profile's GPU time from the newest CUDA line there (cadm_utils/experiment/cost.py).

Images are random (timing does not depend on content)."""
from __future__ import annotations

import argparse
import time
import warnings

import torch

from cadm_utils.data import MultiDomainData, leave_one_domain_out
from cadm_utils.experiment.records import append_record, base_record
from cadm_utils.method.distill import DistillConfig, distill
from cadm_utils.method.masking import MaskingConfig
from cadm_utils.method.methods import METHODS
from cadm_utils.method.models import DomainAwareResNet, build_eval_net
from cadm_utils.method.train import TrainConfig, train_classifier, train_classifiers_stacked
from cadm_utils.profiles import load_profile
from cadm_utils.runtime import device_name, pick_device, prepare_model

LOOPS = ("all", "per_class")


def fake_data(classes: int, domains: int, per_cell: int, resolution: int) -> MultiDomainData:
    n = classes * domains * per_cell
    labels = torch.arange(classes).repeat(domains * per_cell)
    domain = torch.arange(domains).repeat_interleave(classes * per_cell)
    images = torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8)
    return MultiDomainData("fake", images, labels, domain, torch.zeros(n, dtype=torch.int8),
                           [f"c{i}" for i in range(classes)], [f"d{i}" for i in range(domains)],
                           [chr(65 + i) for i in range(domains)])


def per_step(run, device, steps: int) -> float:
    """Seconds per step of run(n) (n steps), the fixed start-up cost subtracted."""
    def timed(n):
        start = time.perf_counter()
        run(n)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    timed(3)  # warm-up (cuDNN autotune, allocator)
    return (timed(3 + steps) - timed(3)) / steps


def distill_run(experts, task, method, config, device):
    return lambda n: distill(experts, task, method, DistillConfig(**{**config, "steps": n}),
                             MaskingConfig(), 0, device, progress=False)


def eval_run(task, images, labels, args, device, stacked: bool):
    seeds = list(range(args.eval_seeds))
    evaluate = load_profile("paper").sections.evaluate  # its protocol and rate are timed

    def nets():
        return [build_eval_net("resnet18", task.n_classes, task.n_domains, args.resolution,
                               args.width) for _ in seeds]

    def run(n):
        config = TrainConfig(steps=n, batch_size=args.eval_batch, augment="dsa",
                             protocol=evaluate.protocol, lr=evaluate.lr)
        if stacked:
            train_classifiers_stacked(nets(), images, labels, config, seeds, device,
                                      progress=False)
        else:
            for net, seed in zip(nets(), seeds):
                train_classifier(net, images, labels, config, seed, device, progress=False)
    return run


def sync_audit(experts, task, config, images, labels, args, device) -> dict[str, int]:
    """Host-device synchronisations in 3 steps of each loop and of the evaluation."""
    runs = {f"{m} {loop}": distill_run(experts, task, METHODS[m], {**config, "class_steps": loop},
                                       device) for m in ("mmd", "cadm") for loop in LOOPS}
    runs["evaluation stacked"] = eval_run(task, images, labels, args, device, True)
    counts = {}
    for name, run in runs.items():
        run(1)  # set-up outside the audit
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run(3)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[name] = sum("synchroniz" in str(w.message) for w in caught)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--real-per-class", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--sync-audit", action="store_true", help="CUDA only")
    parser.add_argument("--out", default=None, help="JSON-lines file to append the timings to")
    args = parser.parse_args()
    device = pick_device(args.device)
    data = fake_data(args.classes, 4, max(args.real_per_class, 4 * args.ipc), args.resolution)
    task = leave_one_domain_out(data, "D")
    experts = [tuple(prepare_model(DomainAwareResNet(args.classes, 4, args.width,
                                                     args.resolution), device)
                     for _ in range(2))]  # "trained" and initial weights: steps interpolate
    config = {"ipc": args.ipc, "real_per_class": args.real_per_class, "factor": 2,
              "checkpoint_every": 10 ** 9}
    print(f"device: {device_name(device)}, torch {torch.__version__}, width {args.width}, "
          f"{args.resolution} px, {args.classes} classes, IPC {args.ipc}×4 sub-images, "
          f"{args.real_per_class} real/class")
    times = {(m, loop): per_step(distill_run(experts, task, METHODS[m],
                                             {**config, "class_steps": loop}, device),
                                 device, args.steps)
             for loop in LOOPS for m in ("mmd", "cadm")}
    for (method, loop), seconds in times.items():
        print(f"distill {method:>5} {loop:>9}: {1000 * seconds:8.1f} ms/step")
    for loop in LOOPS:
        print(f"cadm / mmd ({loop}): {times['cadm', loop] / times['mmd', loop]:.2f}")
    images = task.train.images[:args.classes * args.ipc * 4]  # the decoded set's size
    labels = task.train.labels[:len(images)]
    sequential, stacked = (per_step(eval_run(task, images, labels, args, device, s), device,
                                    args.steps) for s in (False, True))
    print(f"evaluation, {args.eval_seeds} seeds, batch {args.eval_batch}: one by one "
          f"{1000 * sequential:.1f} ms/step, stacked {1000 * stacked:.1f} ms/step, "
          f"ratio {stacked / sequential:.2f}")
    if args.out:
        append_record(args.out, base_record(
            "step_speed", "fake", "D", 0, device, device_type=device.type, width=args.width,
            resolution=args.resolution, classes=args.classes, ipc=args.ipc,
            real_per_class=args.real_per_class, eval_batch=args.eval_batch,
            eval_seeds=args.eval_seeds,
            distill_s={f"{m}/{loop}": seconds for (m, loop), seconds in times.items()},
            eval_s={"sequential": sequential, "stacked": stacked}))
    if args.sync_audit and device.type == "cuda":
        for name, count in sync_audit(experts, task, config, images, labels, args,
                                      device).items():
            print(f"host syncs in 3 steps, {name}: {count}")


if __name__ == "__main__":
    main()
