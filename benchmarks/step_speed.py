"""Time one distillation step (the default settings: a matching and a calibration phase,
interpolated expert, NCFM augmentation) of `mmd` and `cadm` side by side (PACS shape by default:
7 classes, 3 source domains, 64 px, IPC 10 with ρ = 2, 128 real images per class).

    python benchmarks/step_speed.py [--device cuda] [--width 64] [--steps 50]

Prints ms per step for each method and the cadm/mmd ratio, both measured in this run.
Images are random (timing does not depend on content)."""
from __future__ import annotations

import argparse
import time

import torch

from cadm_utils.data import MultiDomainData, leave_one_domain_out
from cadm_utils.method.distill import DistillConfig, distill
from cadm_utils.method.masking import MaskingConfig
from cadm_utils.method.methods import METHODS
from cadm_utils.method.models import DomainAwareResNet
from cadm_utils.runtime import device_name, pick_device


def fake_data(classes: int, domains: int, per_cell: int, resolution: int) -> MultiDomainData:
    n = classes * domains * per_cell
    labels = torch.arange(classes).repeat(domains * per_cell)
    domain = torch.arange(domains).repeat_interleave(classes * per_cell)
    images = torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8)
    return MultiDomainData("fake", images, labels, domain, torch.zeros(n, dtype=torch.int8),
                           [f"c{i}" for i in range(classes)], [f"d{i}" for i in range(domains)],
                           [chr(65 + i) for i in range(domains)])


def time_steps(model, task, method, config, device, steps: int) -> float:
    def run(n):
        start = time.perf_counter()
        distill(model, task, method, DistillConfig(**{**config, "steps": n}), MaskingConfig(),
                0, device, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    run(3)  # warm-up (cuDNN autotune, allocator)
    return (run(3 + steps) - run(3)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--real-per-class", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    device = pick_device(args.device)
    data = fake_data(args.classes, 4, max(args.real_per_class, 4 * args.ipc), args.resolution)
    task = leave_one_domain_out(data, "D")
    experts = []
    for _ in range(2):  # "trained" and initial weights: the default step interpolates them
        model = DomainAwareResNet(args.classes, 4, args.width, args.resolution).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        experts.append(model)
    model = [tuple(experts)]
    config = {"ipc": args.ipc, "real_per_class": args.real_per_class, "factor": 2,
              "checkpoint_every": 10 ** 9}
    times = {m: time_steps(model, task, METHODS[m], config, device, args.steps)
             for m in ("mmd", "cadm")}
    print(f"device: {device_name(device)}, torch {torch.__version__}, width {args.width}, "
          f"{args.resolution} px, {args.classes} classes, IPC {args.ipc}×4 sub-images, "
          f"{args.real_per_class} real/class")
    for method, seconds in times.items():
        print(f"{method:>5}: {1000 * seconds:8.1f} ms/step")
    print(f"cadm / mmd: {times['cadm'] / times['mmd']:.2f}")


if __name__ == "__main__":
    main()
