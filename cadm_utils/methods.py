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
from .losses import mmd_loss, regularization_loss, symmetric_kl
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

    def __post_init__(self):
        if not 0.0 <= self.p_mask < 1.0:
            raise ConfigError(f"p_mask must be in [0, 1), got {self.p_mask}")
        if not 0.0 <= self.p_active <= 1.0:
            raise ConfigError(f"p_active must be in [0, 1], got {self.p_active}")
        if self.lam < 0:
            raise ConfigError(f"lambda must be non-negative, got {self.lam}")


def distillation_losses(model, method: Method, masking: MaskingConfig, n_classes: int,
                        real_x, real_y, real_d, syn_x, syn_y, syn_d,
                        generator: torch.Generator, dam_state: dict | None = None
                        ) -> dict[str, torch.Tensor]:
    """Loss terms for one step, all classes in one batch. The model is frozen (eval mode).

    CADM masks at one block drawn uniformly per step, with probability P_active; masked
    real features (L_adm) and two independently masked synthetic views (L_reg, L_cons)
    continue through the later blocks; synthetic features stay unmasked for matching."""
    block = int(torch.randint(N_BLOCKS, (1,), generator=generator, device=generator.device))
    active = float(torch.rand(1, generator=generator, device=generator.device)) < masking.p_active
    if not (method.masks_anything and active):
        with torch.no_grad():
            real_embedding = model.embed(real_x)
        syn_embedding = model.embed(syn_x)
        terms = {"match": mmd_loss(real_embedding, real_y, syn_embedding, syn_y, n_classes),
                 "reg": regularization_loss(model.classifier(syn_embedding), syn_y),
                 "cons": syn_embedding.new_zeros(())}
        if method.dam:
            views = model.embed(domain_views(syn_x, dam_state["mask_logits"]))
            terms["match"] = terms["match"] + dam_matching_loss(
                real_embedding, real_y, dam_state["real_pseudo"], views, syn_y, n_classes)
        return terms
    weight = model.head_weight(block)
    with torch.no_grad():
        real_h = model.run_blocks(real_x, 0, block + 1)
        if method.adm:
            real_h = real_h * sensitive_channel_mask(real_h, weight, real_d, masking.p_mask,
                                                     generator)
        real_embedding = model.pool(model.run_blocks(real_h, block + 1, N_BLOCKS))
    syn_h = model.run_blocks(syn_x, 0, block + 1)
    views = [syn_h]
    if method.masked_reg:
        views.append(syn_h * sensitive_channel_mask(syn_h, weight, syn_d, masking.p_mask,
                                                    generator))
    if method.cons:
        views.append(syn_h * sensitive_channel_mask(syn_h, weight, syn_d, masking.p_mask,
                                                    generator))
    embeddings = model.pool(model.run_blocks(torch.cat(views), block + 1, N_BLOCKS))
    embeddings = embeddings.chunk(len(views))
    logits = [model.classifier(e) for e in embeddings[1:]] or [model.classifier(embeddings[0])]
    return {
        "match": mmd_loss(real_embedding, real_y, embeddings[0], syn_y, n_classes),
        "reg": regularization_loss(logits[0], syn_y),
        "cons": symmetric_kl(logits[0], logits[1]) if method.cons else logits[0].new_zeros(()),
    }


def total_loss(terms: dict[str, torch.Tensor], masking: MaskingConfig) -> torch.Tensor:
    """Eq. 11 + Eq. 12: L_adm (or L_mmd) + L_reg + λ L_cons."""
    return terms["match"] + terms["reg"] + masking.lam * terms["cons"]
