"""The experts' pretraining objectives: Eq. 10 (CADM's expert, with DomainDrop's masks
active or not) and the baselines' (IRMv1, FACT's amplitude mix). Each is a loss of one
batch; the method classes (methods.py) choose theirs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..runtime import upcast
from ..schema import check_fields, setting
from .augment import random_amplitude_mix
from .losses import irm_penalty, temperature_kl
from .masking import MaskDraw, sensitive_channel_mask

IRM_LAMBDA, IRM_ANNEAL_STEPS = 100.0, 500  # DomainBed's defaults
PROTOCOL_CHOICES = ("dm", "domaindrop")  # train.PROTOCOLS an expert may train with


@dataclass(frozen=True)
class PretrainConfig:
    """How the experts (and, by default, the full-data reference) train: the profile's
    `pretrain` section, whose defaults are the defaults of every profile."""
    # epochs per data set may be a mapping {default: N, pacs: M} (profiles.pretrain_epochs)
    epochs: int = setting(60, 1)
    batch_size: int = setting(128, 2)
    lr: float = setting(0.01, 1e-12)
    # CADM's expert trained with DomainDrop's masks active: one random block per step with
    # probability P_active, survivors rescaled (DomainDrop train_domain.py)
    masked: bool = setting(True)
    mask_kl_weight: float = setting(1.5, 0)  # DomainDrop's KL between two masked passes
    experts: int = setting(1, 1)  # NCFM's pool of pretrained models (num_premodel; 20 there)
    # "last": the last epoch's weights; "best_val": the epoch with the best accuracy on the
    # source domains' held-out images (DomainDrop train_domain.py, save_model "best")
    keep: str = setting("last", choices=("last", "best_val"))
    # train.PROTOCOLS: "dm" (SGD, lr ×0.1 at half the epochs) or "domaindrop" (Nesterov SGD,
    # lr ×0.1 after 0.8 of the epochs), the optimiser of CADM's masked pretraining's code
    protocol: str = setting("dm", choices=PROTOCOL_CHOICES)
    # CADM's heads: "trained" behind the reversal layer (DomainDrop
    # models/LayerDiscriminator.py) or "refit" by a linear fit on the frozen backbone's
    # pooled source features afterwards (method/mechanism.py)
    heads: str = setting("trained", choices=("trained", "refit"))

    def __post_init__(self):  # epochs per data set are checked where the profile is resolved
        check_fields(self, "pretrain.", skip=("epochs",) if isinstance(self.epochs, dict) else ())


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
