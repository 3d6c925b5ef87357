"""Methods as objects, the way DomainBed's algorithms are: one class per method owns its
expert's pretraining objective, its batch transforms and its distillation terms; METHODS
maps each name to an instance.

  random   real images, no distillation (the synthetic set's initialisation, decoded)
  mmd      L_mmd (Eq. 2) + L_reg (Eq. 3); expert pretrained with L_cls (Eq. 1)
  mmd_irm  as mmd, expert pretrained with the IRMv1 penalty (DomainBed's form)
  mmd_fact as mmd, Fourier amplitude mix (FACT) in pretraining and on the real and
           synthetic batches during distillation
  mmd_dam  as mmd, plus DAM's pseudo-domain views matched per pseudo-domain (dam.py)
  cadm     L_adm (Eq. 7) + L_reg masked (Eq. 8) + λ L_cons (Eq. 9); expert with Eq. 10
The terms of cadm switch one by one for the ablation (paper Table 2): CADM(adm=..., ...).

Adding a method: subclass `Method` (distribution matching with an Eq. 1 expert) and override
what differs, then add one line to METHODS (or call `register`). What a method does
differently enters the synthetic sets' cache key through `traits`; its hyper-parameters
are profile settings (CADM's in `masking` and `pretrain`: MaskingConfig, PretrainConfig)
or code constants (DAM's, in settings.code_constants), which enter every product key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import torch

from ..errors import ConfigError
from .augment import random_amplitude_mix
from .dam import N_PSEUDO, dam_matching_loss, domain_views, pseudo_domains
from .losses import consistency_loss, mmd_loss, regularization_loss
from .masking import MaskDraw, MaskingConfig, sensitive_channel_mask
from .models import N_BLOCKS
from .pretraining import (PretrainConfig, fact_loss, irm_loss, masked_pretraining_loss,
                          pretraining_loss)
from .train import BatchLoss, cross_entropy

EXPERT_ONLY_SETTINGS = ("masked", "mask_kl_weight", "heads")  # pretrain keys only CADM's expert reads


class DistillState:
    """What a method keeps during one distillation besides the pixels: extra tensors that
    the optimiser updates with them, and per-batch inputs of its terms."""

    def __init__(self, parameters: list[torch.Tensor] | None = None):
        self.parameters = parameters or []

    def for_batch(self, real_index: torch.Tensor, syn_rows=slice(None)) -> dict:
        """Inputs of the step's terms for the real images drawn (their index in the training
        set) and the decoded synthetic rows in the batch."""
        return {}


@dataclass(frozen=True)
class Method:
    """Distribution matching (DM/NCFM's MMD on the expert's embedding) with an expert
    trained by plain cross-entropy: the base every method extends."""

    name: str
    base: str = ""  # the method a variant row modifies ("" for a method itself)
    # how tables and figures show the method (method_label, method_colour)
    label: str = field(default="", compare=False)
    colour: str | None = field(default=None, compare=False)
    distills = True  # False: the set stays the decoded real initialisation
    expert_kind = "plain"  # experts of one kind are shared by the methods that use it
    # cost of an expert epoch and of a distillation step against plain MMD's (measured on
    # the smoke profile): factors of the cost model (experiment/cost.py)
    expert_cost = 1.0
    distill_cost = 1.0
    has_domain_heads = False  # its expert's heads score channels (Eq. 5): CADM's

    def traits(self) -> dict:
        """How the method differs from plain MMD (part of its synthetic sets' key)."""
        traits = {} if self.distills else {"distill": False}
        if self.expert_kind != "plain":
            traits["pretrain"] = self.expert_kind
        return traits

    @property
    def family(self) -> str:
        """The method's own name, a variant row's base method's: a variant's overrides
        enter its products' keys through the profile, so a row that changes only the
        evaluation shares its base's synthetic sets."""
        return self.base or self.name

    @property
    def key(self) -> dict:
        return {"name": self.family, **self.traits()}

    # ----------------------------------------------------------------- the expert
    def expert_settings(self, pretrain: dict, masking: dict) -> dict:
        """The pretraining settings that make this method's expert (its cache key)."""
        return {k: v for k, v in pretrain.items() if k not in EXPERT_ONLY_SETTINGS}

    def pretraining_objective(self, settings: PretrainConfig,
                              masking: MaskingConfig) -> BatchLoss:
        """The loss of one batch its expert trains on (Eq. 1's cross-entropy here)."""
        return cross_entropy

    # ----------------------------------------------------------------- distillation
    def start(self, task, synthetic, device: torch.device) -> DistillState:
        return DistillState()

    def transform(self, real_x, syn_x, generator: torch.Generator):
        """The step's real and synthetic batches after the method's own transform."""
        return real_x, syn_x

    def real_embedding(self, model, masking: MaskingConfig, draw: MaskDraw, real_x, real_d,
                       generator: torch.Generator) -> torch.Tensor:
        return model.embed(real_x)

    def matching_loss(self, model, masking: MaskingConfig, draw: MaskDraw, n_classes: int,
                      real_x, real_y, real_d, syn_x, syn_y, generator: torch.Generator,
                      batch: dict | None = None) -> torch.Tensor:
        """Eq. 2 (L_mmd) between the real embedding (no gradient) and the synthetic one."""
        with torch.no_grad():
            real = self.real_embedding(model, masking, draw, real_x, real_d, generator)
        return mmd_loss(real, real_y, model.embed(syn_x), syn_y, n_classes)

    def calibration_losses(self, model, masking: MaskingConfig, draw: MaskDraw, syn_x, syn_y,
                           syn_d, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Eq. 3: L_reg on the unmasked synthetic logits; no consistency term."""
        logits = model(syn_x)
        return {"reg": regularization_loss(logits, syn_y), "cons": logits.new_zeros(())}


@dataclass(frozen=True)
class RandomReal(Method):
    """Random real images of the sources: the initialisation, never optimised."""
    distills = False


class FullData(RandomReal):
    """The full-data reference row: every source training image (not a registry entry)."""


@dataclass(frozen=True)
class MMDIRM(Method):
    expert_kind = "irm"

    def pretraining_objective(self, settings, masking) -> BatchLoss:
        return lambda model, x, labels, domains, step, generator: \
            irm_loss(model, x, labels, domains, step)


@dataclass(frozen=True)
class MMDFACT(Method):
    expert_kind = "fact"
    expert_cost = 1.8  # the Fourier-mixed copy of every batch

    def traits(self) -> dict:
        return {**super().traits(), "fact": True}

    def pretraining_objective(self, settings, masking) -> BatchLoss:
        return lambda model, x, labels, domains, step, generator: \
            fact_loss(model, x, labels, generator)

    def transform(self, real_x, syn_x, generator):
        return random_amplitude_mix(real_x, generator), random_amplitude_mix(syn_x, generator)


class _DamState(DistillState):
    def __init__(self, task, synthetic, device):
        h, w = synthetic.images.shape[-2:]  # decoded images keep the full size
        # DAM's soft masks, one per decoded image and pseudo-domain
        self.mask_logits = torch.zeros(len(synthetic.sub_domains), N_PSEUDO, h, w, device=device,
                                       requires_grad=True)
        self.parameters = [self.mask_logits]
        self.real_pseudo = pseudo_domains(task.train.images).to(device)

    def for_batch(self, real_index, syn_rows=slice(None)):
        return {"mask_logits": self.mask_logits[syn_rows],
                "real_pseudo": self.real_pseudo[real_index]}


@dataclass(frozen=True)
class MMDDAM(Method):
    distill_cost = 2.2  # the pseudo-domain views of the synthetic images

    def traits(self) -> dict:
        return {**super().traits(), "dam": True}

    def start(self, task, synthetic, device) -> DistillState:
        return _DamState(task, synthetic, device)

    def matching_loss(self, model, masking, draw, n_classes, real_x, real_y, real_d, syn_x,
                      syn_y, generator, batch=None):
        """L_mmd plus DAM's term: each pseudo-domain view of the synthetic images matched
        against the real images of that pseudo-domain."""
        with torch.no_grad():
            real = self.real_embedding(model, masking, draw, real_x, real_d, generator)
        views = model.embed(domain_views(syn_x, batch["mask_logits"]))
        return mmd_loss(real, real_y, model.embed(syn_x), syn_y, n_classes) + \
            dam_matching_loss(real, real_y, batch["real_pseudo"], views, syn_y, n_classes)


def _mask(h, model, block, domains, masking: MaskingConfig, generator):
    return h * sensitive_channel_mask(h, model.head_weight(block), domains, masking.p_mask,
                                      generator, masking.rescale)


@dataclass(frozen=True)
class CADM(Method):
    """Channel-masked asymmetric distribution matching; each term can be switched off
    (Table 2): `adm` masks the real features for matching (Eq. 7), `masked_reg` computes
    L_reg on a masked view (Eq. 8), `cons` ties two masked views (Eq. 9)."""
    adm: bool = True
    masked_reg: bool = True
    cons: bool = True
    expert_kind = "domain"
    has_domain_heads = True
    expert_cost = 1.8  # two masked passes per batch (DomainDrop's KL)

    def __post_init__(self):
        if self.cons and not self.masked_reg:
            raise ConfigError("L_cons compares two masked predictions: it needs L_reg masked")

    def traits(self) -> dict:
        on = {term: True for term in ("adm", "masked_reg", "cons") if getattr(self, term)}
        return {**super().traits(), **on}

    def expert_settings(self, pretrain, masking) -> dict:
        settings = dict(pretrain)
        if settings["masked"]:
            settings["masking"] = masking
        return settings

    def pretraining_objective(self, settings, masking) -> BatchLoss:
        """Eq. 10, with DomainDrop's masks active when pretrain.masked."""
        if settings.masked:
            return lambda model, x, labels, domains, step, generator: masked_pretraining_loss(
                model, x, labels, domains, masking, settings.mask_kl_weight, generator)
        return lambda model, x, labels, domains, step, generator: \
            pretraining_loss(model, x, labels, domains)

    def real_embedding(self, model, masking, draw, real_x, real_d, generator):
        """Eq. 7's real side: when the draw is active, the real features are masked at the
        drawn block and continue through the later blocks (the synthetic side stays
        unmasked)."""
        if not (self.adm and draw.active):
            return model.embed(real_x)
        real_h = model.run_blocks(real_x, 0, draw.block + 1)
        real_h = _mask(real_h, model, draw.block, real_d, masking, generator)
        return model.pool(model.run_blocks(real_h, draw.block + 1, N_BLOCKS))

    def calibration_losses(self, model, masking, draw, syn_x, syn_y, syn_d, generator):
        """Eq. 8 (L_reg on a masked view) and Eq. 9 (L_cons between two independently masked
        views), all views through the later blocks; Eq. 3 when the draw is inactive."""
        if not ((self.masked_reg or self.cons) and draw.active):
            return super().calibration_losses(model, masking, draw, syn_x, syn_y, syn_d,
                                              generator)
        syn_h = model.run_blocks(syn_x, 0, draw.block + 1)
        n_views = 2 if self.cons else 1
        views = [_mask(syn_h, model, draw.block, syn_d, masking, generator)
                 for _ in range(n_views)]
        embeddings = model.pool(model.run_blocks(torch.cat(views), draw.block + 1, N_BLOCKS))
        logits = model.classifier(embeddings).chunk(n_views)
        cons = consistency_loss(logits[0], logits[1], masking.kl, masking.kl_temperature) \
            if self.cons else logits[0].new_zeros(())
        return {"reg": regularization_loss(logits[0], syn_y), "cons": cons}


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make a method known by its name (profiles, --methods, tables)."""
    if method.name in METHODS or method.name == "full":
        raise ConfigError(f"method '{method.name}' is already registered")
    METHODS[method.name] = method
    return method


register(RandomReal("random", label="Random", colour="#9e9e9e"))
register(Method("mmd", label="MMD", colour="#1f77b4"))
register(MMDIRM("mmd_irm", label="MMD+IRM", colour="#17becf"))
register(MMDFACT("mmd_fact", label="MMD+FACT", colour="#2ca02c"))
register(MMDDAM("mmd_dam", label="MMD+DAM", colour="#9467bd"))
register(CADM("cadm", label="CADM", colour="#d62728"))

FULL_DATA = FullData("full", label="Full data", colour="#333333")

# the registry entries the paper's claims are about: the proposed method, the method every
# baseline extends, and the random-real-images row
PROPOSED, REFERENCE, RANDOM = "cadm", "mmd", "random"


def name_of_label(label: str) -> str:
    """The registry name of the method the paper's tables call `label` ("MMD+DAM")."""
    names = {m.label: m.name for m in [*METHODS.values(), FULL_DATA]}
    if label not in names:
        raise ConfigError(f"no registered method is labelled '{label}'")
    return names[label]


def _named(name: str) -> tuple[Method | None, str]:
    """The registered method a record's method name belongs to, and the rest of the name (a
    variant row's "{row}", a Table 2 row's "[terms]")."""
    family = re.split(r"[{\[]", name, maxsplit=1)[0]
    return (FULL_DATA if family == "full" else METHODS.get(family)), name[len(family):]


def method_label(name: str) -> str:
    """How tables and figures name a method or one of its rows: "CADM", "CADM{grl0}",
    "CADM[adm,reg]"; an unknown name as it is."""
    method, rest = _named(name)
    return (method.label or method.name) + rest if method else name


def method_colour(name: str) -> str | None:
    """The colour of the method a row belongs to (None: matplotlib's next colour)."""
    method, _ = _named(name)
    return method.colour if method else None


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}': expected one of {', '.join(METHODS)}")
    return METHODS[name]


def ablation_variant(adm: bool, masked_reg: bool, cons: bool) -> CADM:
    """A row of Table 2: CADM's class with the chosen terms (cons needs the masked reg)."""
    if adm and masked_reg and cons:
        return METHODS["cadm"]  # the full method: shares its cells with Table 1
    terms = [t for t, on in (("adm", adm), ("reg", masked_reg), ("cons", cons)) if on]
    return replace(METHODS["cadm"], name="cadm[" + (",".join(terms) or "none") + "]",
                   adm=adm, masked_reg=masked_reg, cons=cons)


def calibration_total(terms: dict[str, torch.Tensor], masking: MaskingConfig) -> torch.Tensor:
    """Eq. 12: L_reg + λ L_cons."""
    return terms["reg"] + masking.lam * terms["cons"]


def total_loss(terms: dict[str, torch.Tensor], masking: MaskingConfig) -> torch.Tensor:
    """Eq. 11 + Eq. 12 in one step: L_adm (or L_mmd) + L_reg + λ L_cons."""
    return terms["match"] + calibration_total(terms, masking)

