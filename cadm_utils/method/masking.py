"""Domain-sensitive channel masking: its settings, the per-step draw, activation scores
(Eq. 5) and weighted random masks (Eq. 6)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..runtime import upcast
from ..schema import check_fields, check_value, section_field, setting
from .models import N_BLOCKS


@dataclass(frozen=True)
class MaskingConfig:
    """CADM's masking hyper-parameters: the profile's `masking` section. The field defaults
    are the defaults of every profile (settings.py reads them from here)."""
    p_mask: float = setting(0.33, 0, 1, below=True)  # P_mask: share of channels masked (Eq. 6)
    p_active: float = setting(0.8, 0, 1)  # P_active: a step's drawn block is masked
    lam: float = setting(100.0, 0)  # λ of Eq. 12
    rescale: bool = setting(True)  # DomainDrop models/resnet_domain.py, recover_flag
    # L_cons: DomainDrop's loss/KL_Loss.py ("temperature") or Eq. 9 as printed ("symmetric")
    kl: str = setting("temperature", choices=("temperature", "symmetric"))
    kl_temperature: float = setting(5.0, 1e-12)  # DomainDrop train_domain.py, KL_Loss_T

    def __post_init__(self):
        check_fields(self, "masking.")


@dataclass(frozen=True)
class MaskDraw:
    """The step's masking decision: the block (drawn uniformly) and whether it is masked
    (probability P_active), shared by the matching and the calibration phase."""
    block: int
    active: bool

    @classmethod
    def sample(cls, masking: MaskingConfig, generator: torch.Generator) -> "MaskDraw":
        block = int(torch.randint(N_BLOCKS, (1,), generator=generator, device=generator.device))
        active = float(torch.rand(1, generator=generator, device=generator.device)) < \
            masking.p_active
        return cls(block, active)


def activation_scores(features: torch.Tensor, head_weight: torch.Tensor, domains: torch.Tensor,
                      normalize: bool = True) -> torch.Tensor:
    """Eq. 5: s_j = W^{ŷ}_j · GAP(F(x))_j for every sample and channel.

    features (B, C, H, W); head_weight (n_domains, C), the domain head after this block;
    domains (B,) the true domain of each sample. With `normalize`, each row is min-max
    scaled to [0, 1] across channels (scores must be non-negative for the keys of Eq. 6).
    GAP comes first, as Eq. 5 prints it; the DomainDrop code (LayerDiscriminator.py)
    min-max scales the weighted map across channels at each position before its GAP, which
    gives other scores.
    """
    pooled = upcast(features).mean(dim=(2, 3))
    raw = upcast(head_weight)[domains] * pooled
    if not normalize:
        return raw
    low = raw.amin(dim=1, keepdim=True)
    high = raw.amax(dim=1, keepdim=True)
    return (raw - low) / (high - low).clamp_min(1e-12)


def masked_count(p_mask: float, channels: int) -> int:
    """M = ⌊P_mask · C⌋ (with a tolerance so that e.g. 0.5·64 is not floored to 31)."""
    check_value("p_mask", p_mask, section_field(MaskingConfig, "p_mask"))
    return int(math.floor(p_mask * channels + 1e-9))


def channel_mask(scores: torch.Tensor, p_mask: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. 6: a (B, C) 0/1 mask with exactly ⌊p_mask·C⌋ zeros per row.

    Weighted random selection without replacement (Efraimidis & Spirakis 2006): key
    k_j = r_j^(1/s_j) with r_j ~ U(0, 1); the M largest keys are masked, so channel j is
    drawn with probability proportional to s_j. Keys are compared as log k_j = log r_j / s_j;
    a zero score gives key 0 and is masked only when fewer than M scores are positive.
    """
    batch, channels = scores.shape
    count = masked_count(p_mask, channels)
    mask = torch.ones_like(scores)
    if count == 0:
        return mask
    device = generator.device if generator is not None else scores.device
    r = torch.rand(batch, channels, generator=generator, device=device).to(scores.device)
    log_keys = torch.log(r.clamp_min(1e-30)) / scores.clamp_min(0)  # score 0 → -inf
    masked = log_keys.topk(count, dim=1).indices
    return mask.scatter_(1, masked, 0.0)


def rescale_mask(mask: torch.Tensor) -> torch.Tensor:
    """DomainDrop's recover flag (models/resnet_domain.py): scale the surviving channels by
    numel / sum of the batch's mask, so that the masked map keeps the channel-sum of the
    unmasked one in expectation (C / (C − M) with exactly M zeros per row)."""
    return mask * (mask.numel() / mask.sum().clamp_min(1))


def sensitive_channel_mask(features: torch.Tensor, head_weight: torch.Tensor,
                           domains: torch.Tensor, p_mask: float,
                           generator: torch.Generator | None = None,
                           rescale: bool = False) -> torch.Tensor:
    """(B, C, 1, 1) mask of the domain-sensitive channels of one block's features; with
    `rescale`, the survivors are scaled up as in DomainDrop."""
    with torch.no_grad():
        scores = activation_scores(features, head_weight, domains)
        mask = channel_mask(scores, p_mask, generator)
        if rescale:
            mask = rescale_mask(mask)
        return mask[:, :, None, None].to(features.dtype)
