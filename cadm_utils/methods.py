"""Method registry and the per-step distillation objective of each method.

A method says how its expert is pretrained and which loss terms distillation uses:
  random   real images, no distillation (the synthetic set's initialisation, decoded)
  mmd      L_mmd (Eq. 2) + L_reg (Eq. 3); expert pretrained with L_cls (Eq. 1)
  mmd_irm  as mmd, expert pretrained with the IRMv1 penalty (DomainBed's form)
  mmd_fact as mmd, Fourier amplitude mix (FACT) in pretraining and on the real and
           synthetic batches during distillation
  mmd_dam  as mmd, plus DAM's pseudo-domain views matched per pseudo-domain (dam.py)
  cadm     L_adm (Eq. 7) + L_reg masked (Eq. 8) + λ L_cons (Eq. 9); expert with Eq. 10
The terms of cadm switch one by one for the ablation (paper Table 2).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from .dam import dam_matching_loss, domain_views
from .errors import ConfigError
from .losses import consistency_loss, mmd_loss, regularization_loss
from .masking import sensitive_channel_mask
from .models import N_BLOCKS


@dataclass(frozen=True)
class Method:
    name: str
    distill: bool = True
    pretrain: str = "plain"  # "plain" (Eq. 1), "domain" (Eq. 10), "irm", "fact"
    fact: bool = False  # Fourier amplitude mix of real and synthetic batches
    dam: bool = False  # pseudo-domain soft masks and view matching (dam.py)
    adm: bool = False  # mask real features for matching (Eq. 7)
    masked_reg: bool = False  # mask synthetic features for L_reg (Eq. 8)
    cons: bool = False  # dual consistency (Eq. 9)

    @property
    def masks_anything(self) -> bool:
        return self.adm or self.masked_reg or self.cons

    @property
    def key(self) -> dict:
        """The fields that differ from the defaults: a cache key that stays the same when
        a new option (with a default) is added to Method."""
        defaults = Method(self.name)
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name == "name" or getattr(self, f.name) != getattr(defaults, f.name)}


METHODS = {
    "random": Method("random", distill=False),
    "mmd": Method("mmd"),
    "mmd_irm": Method("mmd_irm", pretrain="irm"),
    "mmd_fact": Method("mmd_fact", pretrain="fact", fact=True),
    "mmd_dam": Method("mmd_dam", dam=True),
    "cadm": Method("cadm", pretrain="domain", adm=True, masked_reg=True, cons=True),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}': expected one of {', '.join(METHODS)}")
    return METHODS[name]


def ablation_variant(adm: bool, masked_reg: bool, cons: bool) -> Method:
    """A row of Table 2: CADM's expert with the chosen terms (cons needs the masked reg)."""
    if cons and not masked_reg:
        raise ConfigError("L_cons compares two masked predictions: it needs L_reg masked")
    if adm and masked_reg and cons:
        return METHODS["cadm"]  # the full method: shares its cells with Table 1
    terms = [t for t, on in (("adm", adm), ("reg", masked_reg), ("cons", cons)) if on]
    name = "cadm[" + (",".join(terms) or "none") + "]"
    return replace(METHODS["cadm"], name=name, adm=adm, masked_reg=masked_reg, cons=cons)


@dataclass(frozen=True)
class MaskingConfig:
    p_mask: float = 0.33
    p_active: float = 0.8
    lam: float = 100.0  # λ of Eq. 12
    rescale: bool = True  # DomainDrop's recover flag
    kl: str = "temperature"  # L_cons form: DomainDrop's "temperature" KL or Eq. 9 "symmetric"
    kl_temperature: float = 5.0

    def __post_init__(self):
        if not 0.0 <= self.p_mask < 1.0:
            raise ConfigError(f"p_mask must be in [0, 1), got {self.p_mask}")
        if not 0.0 <= self.p_active <= 1.0:
            raise ConfigError(f"p_active must be in [0, 1], got {self.p_active}")
        if self.lam < 0:
            raise ConfigError(f"lambda must be non-negative, got {self.lam}")


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


def _mask(h, model, block, domains, masking, generator):
    return h * sensitive_channel_mask(h, model.head_weight(block), domains, masking.p_mask,
                                      generator, masking.rescale)


def matching_loss(model, method: Method, masking: MaskingConfig, draw: MaskDraw, n_classes: int,
                  real_x, real_y, real_d, syn_x, syn_y, generator: torch.Generator,
                  dam_state: dict | None = None) -> torch.Tensor:
    """Eq. 2 (L_mmd), or Eq. 7 (L_adm) when the method masks real features and the draw is
    active: the real features are masked at the drawn block and continue through the later
    blocks; the synthetic features stay unmasked."""
    with torch.no_grad():
        if method.adm and draw.active:
            real_h = model.run_blocks(real_x, 0, draw.block + 1)
            real_h = _mask(real_h, model, draw.block, real_d, masking, generator)
            real_embedding = model.pool(model.run_blocks(real_h, draw.block + 1, N_BLOCKS))
        else:
            real_embedding = model.embed(real_x)
    loss = mmd_loss(real_embedding, real_y, model.embed(syn_x), syn_y, n_classes)
    if method.dam:
        views = model.embed(domain_views(syn_x, dam_state["mask_logits"]))
        loss = loss + dam_matching_loss(real_embedding, real_y, dam_state["real_pseudo"], views,
                                        syn_y, n_classes)
    return loss


def calibration_losses(model, method: Method, masking: MaskingConfig, draw: MaskDraw,
                       syn_x, syn_y, syn_d, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Eq. 3 (L_reg on unmasked synthetic features) or Eq. 8 (on a masked view), and Eq. 9
    (L_cons between two independently masked views), all views through the later blocks."""
    if not ((method.masked_reg or method.cons) and draw.active):
        logits = model(syn_x)
        return {"reg": regularization_loss(logits, syn_y), "cons": logits.new_zeros(())}
    syn_h = model.run_blocks(syn_x, 0, draw.block + 1)
    n_views = 2 if method.cons else 1
    views = [_mask(syn_h, model, draw.block, syn_d, masking, generator) for _ in range(n_views)]
    embeddings = model.pool(model.run_blocks(torch.cat(views), draw.block + 1, N_BLOCKS))
    logits = model.classifier(embeddings).chunk(n_views)
    cons = consistency_loss(logits[0], logits[1], masking.kl, masking.kl_temperature) \
        if method.cons else logits[0].new_zeros(())
    return {"reg": regularization_loss(logits[0], syn_y), "cons": cons}


def calibration_total(terms: dict[str, torch.Tensor], masking: MaskingConfig) -> torch.Tensor:
    """Eq. 12: L_reg + λ L_cons."""
    return terms["reg"] + masking.lam * terms["cons"]


def total_loss(terms: dict[str, torch.Tensor], masking: MaskingConfig) -> torch.Tensor:
    """Eq. 11 + Eq. 12 in one step: L_adm (or L_mmd) + L_reg + λ L_cons."""
    return terms["match"] + calibration_total(terms, masking)


def distillation_losses(model, method: Method, masking: MaskingConfig, n_classes: int,
                        real_x, real_y, real_d, syn_x, syn_y, syn_d,
                        generator: torch.Generator, dam_state: dict | None = None
                        ) -> dict[str, torch.Tensor]:
    """Every term of one summed step (all classes in one batch, one mask draw)."""
    draw = MaskDraw.sample(masking, generator)
    match = matching_loss(model, method, masking, draw, n_classes, real_x, real_y, real_d,
                          syn_x, syn_y, generator, dam_state)
    return {"match": match, **calibration_losses(model, method, masking, draw, syn_x, syn_y,
                                                 syn_d, generator)}
