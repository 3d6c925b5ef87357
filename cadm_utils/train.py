"""Training loops: supervised training (pretraining with domain heads, evaluation nets)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .augment import crop_flip, dsa, random_amplitude_mix
from .errors import ConfigError
from .losses import irm_penalty, temperature_kl
from .runtime import autocast, prepare_model, to_float, upcast

AUGMENTATIONS = ("crop_flip", "dsa", "none")
OBJECTIVES = ("plain", "domain", "irm", "fact")  # pretraining losses, see batch_loss
IRM_LAMBDA, IRM_ANNEAL_STEPS = 100.0, 500  # DomainBed's defaults


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
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown augmentation '{self.augment}': "
                              f"expected one of {', '.join(AUGMENTATIONS)}")

    def epochs_for(self, n_images: int) -> int:
        if self.epochs:
            return self.epochs
        return max(1, math.ceil(self.steps / math.ceil(n_images / self.batch_size)))


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


def masked_pretraining_loss(model, x, labels, domains, masking, kl_weight: float,
                            generator: torch.Generator) -> torch.Tensor:
    """Eq. 10 with DomainDrop's masks active (train_domain.py): one block drawn per step,
    masked with probability P_active (Eq. 5 scores from the sample's own domain head, Eq. 6
    weighted random masks, survivors rescaled when masking.rescale); the masked features go
    on through the later blocks, while each domain head sees its block's unmasked features.
    With kl_weight > 0 the batch is doubled and the class predictions of its two
    independently masked copies are tied by DomainDrop's temperature KL."""
    from .masking import sensitive_channel_mask
    from .methods import MaskDraw

    if kl_weight > 0:
        x, labels, domains = torch.cat([x, x]), torch.cat([labels, labels]), \
            torch.cat([domains, domains])
    draw = MaskDraw.sample(masking, generator)
    h = model.stem(model.normalize(x))
    features = []
    for index, block in enumerate(model.blocks):
        h = block(h)
        features.append(h)
        if draw.active and index == draw.block:
            h = h * sensitive_channel_mask(h, model.head_weight(index), domains, masking.p_mask,
                                           generator, masking.rescale)
    logits = model.classifier(model.pool(h))
    domain_logits = model.domain_logits(features, reverse=True)
    loss = F.cross_entropy(logits, labels) + \
        torch.stack([F.cross_entropy(z, domains) for z in domain_logits]).mean()
    if kl_weight > 0:
        first, second = logits.chunk(2)
        loss = loss + kl_weight * temperature_kl(first, second, masking.kl_temperature)
    return loss


def irm_loss(model, x, labels, domains, step: int) -> torch.Tensor:
    """IRMv1 as in DomainBed: mean risk over domains + weight · mean penalty over domains;
    the weight is 1 for the first IRM_ANNEAL_STEPS steps, then IRM_LAMBDA. Once the weight
    jumps, the whole loss is divided by it, as the IRM authors' code does, so that SGD with
    momentum does not diverge (DomainBed resets Adam instead)."""
    logits = model(x)
    present = [d for d in domains.unique() if int((domains == d).sum()) >= 2]
    risks = torch.stack([F.cross_entropy(upcast(logits[domains == d]), labels[domains == d])
                         for d in present])
    penalties = torch.stack([irm_penalty(logits[domains == d], labels[domains == d])
                             for d in present])
    weight = IRM_LAMBDA if step >= IRM_ANNEAL_STEPS else 1.0
    return (risks.mean() + weight * penalties.mean()) / weight


def fact_loss(model, x, labels, generator: torch.Generator) -> torch.Tensor:
    """CE on the batch and on its Fourier amplitude-mixed copy (FACT's augmentation part)."""
    both = torch.cat([x, random_amplitude_mix(x, generator)])
    return F.cross_entropy(model(both), torch.cat([labels, labels]))


def batch_loss(objective: str, model, x, labels, domains, step: int, generator,
               masked: dict | None = None) -> torch.Tensor:
    """`masked`: {"masking": MaskingConfig, "kl_weight": w} trains the 'domain' objective
    with DomainDrop's masks active."""
    if objective == "domain" and masked is not None:
        return masked_pretraining_loss(model, x, labels, domains, masked["masking"],
                                       masked["kl_weight"], generator)
    if objective == "domain":
        return pretraining_loss(model, x, labels, domains)
    if objective == "irm":
        return irm_loss(model, x, labels, domains, step)
    if objective == "fact":
        return fact_loss(model, x, labels, generator)
    return F.cross_entropy(model(x), labels)


def train_classifier(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     config: TrainConfig, seed: int, device: torch.device,
                     domains: torch.Tensor | None = None, objective: str = "plain",
                     progress: bool = True, desc: str = "train",
                     masked: dict | None = None) -> torch.nn.Module:
    """SGD with momentum; lr ×0.1 at half the epochs (the DM evaluation schedule).
    `objective`: plain CE, 'domain' (Eq. 10, needs a DomainAwareResNet), 'irm' or 'fact'
    (the pretraining of the MMD+IRM and MMD+FACT baselines); 'domain' and 'irm' need
    `domains`."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown training objective '{objective}': "
                          f"expected one of {', '.join(OBJECTIVES)}")
    if objective in ("domain", "irm") and domains is None:
        raise ConfigError(f"objective '{objective}' needs domain labels")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = prepare_model(model, device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    n = len(labels)
    epochs = config.epochs_for(n)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [epochs // 2], 0.1)
    step = 0
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            index = order[start:start + config.batch_size]
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            x = augment_batch(to_float(images[index], device), config.augment, generator)
            y = labels[index].to(device)
            d = domains[index].to(device) if domains is not None else None
            with autocast(device):
                loss = batch_loss(objective, model, x, y, d, step, generator, masked)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
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
