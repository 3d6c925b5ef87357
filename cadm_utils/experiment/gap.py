"""Domain gap of a data set: a small ResNet trained on the source domains, tested on
held-out images of those domains and on the unseen domain (leave-one-domain-out)."""
from __future__ import annotations

import time

import torch

from ..data import leave_one_domain_out, load_dataset
from ..method.models import DomainAwareResNet
from ..method.train import DomainGapConfig, TrainConfig, accuracy, train_classifier
from ..runtime import pick_device
from .records import append_record, base_record


def measure_domain_gap(dataset: str = "embedded", data_root=None, resolution=None,
                       settings: DomainGapConfig = DomainGapConfig(), out=None,
                       targets=None) -> list[dict]:
    """Per split and seed: accuracy on the source domains' held-out images and on the
    unseen domain of a network trained as `settings` says (a profile's domain_gap)."""
    data = load_dataset(dataset, data_root, resolution)
    device = pick_device()
    width, epochs, seeds = settings.width, settings.epochs, settings.seeds
    config = TrainConfig(epochs=epochs, batch_size=settings.batch_size, lr=settings.lr)
    records = []
    print(f"{'split':<8}{'seed':>5}{'source held-out %':>19}{'unseen domain %':>17}"
          f"{'chance %':>10}")
    for target in targets or data.domain_letters:
        task = leave_one_domain_out(data, target)
        for seed in range(seeds):
            start = time.time()
            torch.manual_seed(seed)  # torch's own start seed differs per process
            model = DomainAwareResNet(task.n_classes, task.n_domains, width, data.resolution)
            model = train_classifier(model, task.train.images, task.train.labels, config, seed,
                                     device, desc=task.name)
            record = base_record(kind="domain_gap", dataset=dataset, split=task.name, seed=seed,
                                 device=device)
            record.update(
                source_val_acc=accuracy(model, task.val.images, task.val.labels, device),
                target_acc=accuracy(model, task.test.images, task.test.labels, device),
                chance=100.0 / task.n_classes, width=width, epochs=epochs,
                wall_s=round(time.time() - start, 1))
            records.append(record)
            print(f"{task.name:<8}{seed:>5}{record['source_val_acc']:>19.1f}"
                  f"{record['target_acc']:>17.1f}{record['chance']:>10.1f}", flush=True)
            if out:
                append_record(out, record)
    mean = lambda key: sum(r[key] for r in records) / len(records)
    print(f"{'mean':<13}{mean('source_val_acc'):>19.1f}{mean('target_acc'):>17.1f}"
          f"{100.0 / task.n_classes:>10.1f}")
    return records
