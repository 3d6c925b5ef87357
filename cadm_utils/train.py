"""Training loops: supervised training (pretraining with domain heads, evaluation nets)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .augment import crop_flip, dsa
from .errors import ConfigError
from .runtime import autocast, prepare_model, to_float

AUGMENTATIONS = ("crop_flip", "dsa", "none")


@dataclass
class TrainConfig:
    epochs: int = 0  # 0: derived from `steps`
    steps: int = 0  # optimiser steps, for tiny (synthetic) training sets
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: str = "crop_flip"

    def __post_init__(self):
        if (self.epochs < 1) == (self.steps < 1) or self.batch_size < 2 or self.lr <= 0:
            raise ConfigError(f"invalid training setting: epochs={self.epochs}, "
                              f"steps={self.steps} (give exactly one), "
                              f"batch_size={self.batch_size}, lr={self.lr}")

    def epochs_for(self, n_images: int) -> int:
        if self.epochs:
            return self.epochs
        return max(1, math.ceil(self.steps / math.ceil(n_images / self.batch_size)))
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown augmentation '{self.augment}': "
                              f"expected one of {', '.join(AUGMENTATIONS)}")


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    if kind == "crop_flip":
        return crop_flip(x, generator)
    if kind == "dsa":
        return dsa(x, generator, shared=False)
    return x


def pretraining_loss(model, x, labels, domains) -> torch.Tensor:
    """Eq. 10: L_cls (Eq. 1) + L_dom (Eq. 4), the mean of the per-block domain CE losses
    behind gradient reversal."""
    features = model.block_features(x)
    class_loss = F.cross_entropy(model.classifier(model.pool(features[-1])), labels)
    domain_logits = model.domain_logits(features, reverse=True)
    domain_loss = torch.stack([F.cross_entropy(z, domains) for z in domain_logits]).mean()
    return class_loss + domain_loss


def train_classifier(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     config: TrainConfig, seed: int, device: torch.device,
                     domains: torch.Tensor | None = None, progress: bool = True,
                     desc: str = "train") -> torch.nn.Module:
    """SGD with momentum; lr ×0.1 at half the epochs (the DM evaluation schedule).
    With `domains`, the loss is Eq. 10 (model must be a DomainAwareResNet)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = prepare_model(model, device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    n = len(labels)
    epochs = config.epochs_for(n)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [epochs // 2], 0.1)
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            index = order[start:start + config.batch_size]
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            x = augment_batch(to_float(images[index], device), config.augment, generator)
            y = labels[index].to(device)
            with autocast(device):
                if domains is None:
                    loss = F.cross_entropy(model(x), y)
                else:
                    loss = pretraining_loss(model, x, y, domains[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(labels), batch_size):
        x = to_float(images[start:start + batch_size], device)
        with autocast(device):
            predicted = model(x).argmax(1)
        correct += (predicted == labels[start:start + batch_size].to(device)).sum()
    return 100.0 * correct.item() / max(len(labels), 1)
