"""The experts' pretraining objectives: Eq. 10 (CADM's expert, with DomainDrop's masks
active or not) and the baselines' (IRMv1, FACT's amplitude mix). Each is a loss of one
batch; the method classes (methods.py) choose theirs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..runtime import upcast
from .augment import random_amplitude_mix
from .losses import irm_penalty, temperature_kl
from .masking import MaskDraw, sensitive_channel_mask

IRM_LAMBDA, IRM_ANNEAL_STEPS = 100.0, 500  # DomainBed's defaults


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
