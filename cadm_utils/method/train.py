"""The training loop of experts and evaluation networks: DM's protocol (SGD, lr ×0.1 at
half the epochs) or NCFM's (AdamW, lr ×0.5 at each fifth, cut-mix)."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import ConfigError
from ..runtime import autocast, prepare_model, to_float
from ..schema import check_fields, setting
from .augment import DRAWS, OPERATIONS, crop_flip, cutmix, dsa

# "dsa": DM's evaluation augmentation on normalised images (augment.dsa); "dsa_pixels": the
# same on [0, 1] pixels (fills black, brightness ±0.5 px), kept for the profiles that pin it
AUGMENTATIONS = ("crop_flip", "dsa", "dsa_pixels", "none")
# "dm": SGD with momentum, lr ×0.1 at half the epochs (DM's evaluation, utils.py
# evaluate_synset). "ncfm": NCFM's evaluation (condenser/evaluate.py, utils/train_val.py
# train_epoch, config/ipc*/*.yaml): AdamW with weight decay 0.01, lr ×0.5 after each fifth
# of the epochs, cut-mix on half the batches. "domaindrop": DomainDrop's optimiser
# (optimizer_helper.py get_optim_and_scheduler_scatter, train_domain.py --nesterov): SGD
# with Nesterov momentum, lr ×0.1 once after 0.8 of the epochs, plain CE.
PROTOCOLS = ("dm", "ncfm", "domaindrop")
NCFM_WEIGHT_DECAY, NCFM_DECAY, NCFM_PHASES = 0.01, 0.5, 5
DOMAINDROP_STEP_AT = 0.8  # step_radio
# (model, x, labels, domains, step, generator) -> loss of one batch
BatchLoss = Callable[..., torch.Tensor]


@dataclass
class TrainConfig:
    epochs: int = 0  # 0: derived from `steps`
    steps: int = 0  # optimiser steps, for tiny (synthetic) training sets
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: str = "crop_flip"
    protocol: str = "dm"
    dsa_draws: str = "image"  # with augment dsa/dsa_pixels: augment.DRAWS
    dsa_operations: str = "one"  # augment.OPERATIONS

    def __post_init__(self):
        if (self.epochs < 1) == (self.steps < 1) or self.batch_size < 2 or self.lr <= 0:
            raise ConfigError(f"invalid training setting: epochs={self.epochs}, "
                              f"steps={self.steps} (give exactly one), "
                              f"batch_size={self.batch_size}, lr={self.lr}")
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown augmentation '{self.augment}': "
                              f"expected one of {', '.join(AUGMENTATIONS)}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown training protocol '{self.protocol}': "
                              f"expected one of {', '.join(PROTOCOLS)}")
        if self.dsa_draws not in DRAWS or self.dsa_operations not in OPERATIONS:
            raise ConfigError(f"unknown DSA draws '{self.dsa_draws}' or operations "
                              f"'{self.dsa_operations}': expected one of {', '.join(DRAWS)} "
                              f"and one of {', '.join(OPERATIONS)}")

    def epochs_for(self, n_images: int) -> int:
        if self.epochs:
            return self.epochs
        return max(1, math.ceil(self.steps / math.ceil(n_images / self.batch_size)))


@dataclass(frozen=True)
class EvaluateConfig:
    """How fresh networks are trained on a distilled set and tested: the profile's
    `evaluate` section (defaults of every profile); exactly one of steps and epochs."""
    steps: int = setting(0, 0)
    epochs: int = setting(0, 0)
    batch_size: int = setting(256, 2)
    lr: float = setting(0.01, 1e-12)
    seeds: int = setting(3, 1)  # evaluation networks per cell
    # a cell's networks train as one vmapped ensemble (the same networks up to summation
    # order, tests/test_stacked.py)
    stack_seeds: bool = setting(False)
    # PROTOCOLS: DM's SGD schedule; "ncfm": NCFM's evaluation (AdamW, its adamw_lr 0.001,
    # cut-mix), behind DM's on the source val images of the bench and pacs-cpu profiles
    protocol: str = setting("dm", choices=("dm", "ncfm"))
    # where DSA acts: "normalised", as DM's evaluate_synset (its tensors are normalised when
    # loaded; fills are the mean colour, brightness ±0.5 std); "pixels": on [0, 1] pixels
    # (black fills, brightness ±0.5), the records of the profiles that pin it
    dsa: str = setting("normalised", choices=("normalised", "pixels"))
    # DSA's parameters drawn per image ("image", DM's evaluate_synset: DiffAugment's seed −1)
    # or once a batch ("batch"); one operation a batch ("one", DM's mode 'S') or all six in
    # DiffAugment's order ("all", its mode 'M'): settings for an ablation, DM's by default
    dsa_draws: str = setting("image", choices=DRAWS)
    dsa_operations: str = setting("one", choices=OPERATIONS)

    def __post_init__(self):
        check_fields(self, "evaluate.")
        if (self.steps > 0) == (self.epochs > 0):
            raise ConfigError("evaluate needs exactly one of steps and epochs "
                              "(a positive integer)")

    def train_config(self) -> TrainConfig:
        """How the evaluation networks train. As DM's evaluate_synset (VICO-UoE/
        DatasetCondensation utils.py): SGD with momentum 0.9 and weight decay 5e-4 at `lr`,
        lr ×0.1 at half the length, DSA on every batch (`dsa`); NCFM's schedule instead
        under protocol "ncfm"."""
        return TrainConfig(epochs=self.epochs, steps=self.steps, batch_size=self.batch_size,
                           lr=self.lr, protocol=self.protocol,
                           augment="dsa" if self.dsa == "normalised" else "dsa_pixels",
                           dsa_draws=self.dsa_draws, dsa_operations=self.dsa_operations)


@dataclass(frozen=True)
class FullDataConfig:
    """The full-data reference row (Tables 1 and 4): ResNet-18s trained on every source
    training image like the experts; the profile's `full_data` section."""
    epochs: int = setting(0, 0)  # 0: the experts' pretraining length

    def __post_init__(self):
        check_fields(self, "full_data.")


@dataclass(frozen=True)
class DomainGapConfig:
    """Fig. 1(a)'s measurement (`python -m cadm_utils domain-gap`): a domain-aware ResNet-18
    of this width trained on the source domains with crop and flip, DM's schedule; the
    profile's `domain_gap` section."""
    width: int = setting(16, 1)
    epochs: int = setting(15, 1)
    batch_size: int = setting(64, 2)
    lr: float = setting(0.05, 1e-12)
    seeds: int = setting(1, 1)

    def __post_init__(self):
        check_fields(self, "domain_gap.")


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator,
                  dsa_draws: str = "image", dsa_operations: str = "one") -> torch.Tensor:
    if kind == "crop_flip":
        return crop_flip(x, generator)
    if kind in ("dsa", "dsa_pixels"):
        return dsa(x, generator, kind == "dsa", dsa_draws, dsa_operations)
    return x


def cross_entropy(model, x, labels, domains, step: int, generator) -> torch.Tensor:
    """The plain batch loss (Eq. 1; the evaluation networks' under DM's protocol)."""
    return F.cross_entropy(model(x), labels)


def mixed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                        partner_labels: torch.Tensor, ratio) -> torch.Tensor:
    """CutMix's loss: ratio · CE(labels) + (1 − ratio) · CE(partner labels), where ratio
    is the share of each image that is still its own (1: no mix, plain CE)."""
    return (ratio * F.cross_entropy(logits, labels)
            + (1 - ratio) * F.cross_entropy(logits, partner_labels))


def cutmix_cross_entropy(model, x, labels, domains, step: int, generator) -> torch.Tensor:
    """NCFM's evaluation batch loss: CE on a batch cut-mixed with probability 0.5."""
    x, partner_labels, ratio = cutmix(x, labels, generator)
    return mixed_cross_entropy(model(x), labels, partner_labels, ratio)


def no_mix(x: torch.Tensor, labels: torch.Tensor, generator) -> tuple:
    """DM's protocol mixes nothing: each image is all its own (ratio 1)."""
    return x, labels, 1.0


BATCH_LOSSES = {"dm": cross_entropy, "ncfm": cutmix_cross_entropy, "domaindrop": cross_entropy}
# the same draws, for the stacked networks
BATCH_MIXES = {"dm": no_mix, "ncfm": cutmix, "domaindrop": no_mix}


def train_classifier(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     config: TrainConfig, seed: int, device: torch.device,
                     domains: torch.Tensor | None = None, loss: BatchLoss | None = None,
                     progress: bool = True, desc: str = "train",
                     keep_best: Callable[[torch.nn.Module], float] | None = None,
                     log_epoch: Callable[[int, float], None] | None = None
                     ) -> torch.nn.Module:
    """Trains under `config.protocol` (see PROTOCOLS). `loss(model, x, labels, domains,
    step, generator)` is the batch objective: by default the protocol's (plain CE; CE on
    cut-mixed batches), or a method's pretraining objective
    (Method.pretraining_objective), which may need `domains`. With `keep_best` (a score of
    the model in eval mode, called after each epoch) the weights of the best-scoring epoch
    are returned, the later one on a tie (DomainDrop train_domain.py keeps its model of
    best source-validation accuracy that way); otherwise the last epoch's. `log_epoch(epoch,
    mean batch loss)` is told each epoch's training loss (one host sync per epoch)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = prepare_model(model, device).train()
    loss = loss or BATCH_LOSSES[config.protocol]
    optimizer, schedule, epochs = optimiser(model.parameters(), config, len(labels))
    step, best = 0, None
    for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        total, batches = torch.zeros((), device=device), 0
        for x, y, d in epoch_batches(images, labels, domains, config, generator, device):
            with autocast(device):
                value = loss(model, x, y, d, step, generator)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            step += 1
            if log_epoch is not None:  # no extra work on the training path otherwise
                total, batches = total + value.detach().float(), batches + 1
        schedule.step()
        if log_epoch is not None:
            log_epoch(epoch, float(total) / max(batches, 1))
        if keep_best is not None:
            score = keep_best(model.eval())
            if best is None or score >= best[0]:
                best = (score, copy.deepcopy(model.state_dict()))
            model.train()
    if best is not None:
        model.load_state_dict(best[1])
    return model.eval()


def train_classifiers_stacked(models: list[torch.nn.Module], images: torch.Tensor,
                              labels: torch.Tensor, config: TrainConfig, seeds: list[int],
                              device: torch.device, progress: bool = True,
                              desc: str = "train") -> list[torch.nn.Module]:
    """`train_classifier` with the protocol's CE for several networks of one architecture
    at once (one per evaluation seed): their parameters are stacked and one vmapped forward
    and backward trains them all (torch.func's model ensembling), so a GPU runs one larger
    kernel where it ran one per seed. Each network sees the batches, augmentations and
    cut-mixes its own seed's generator draws, and the optimiser (elementwise) acts on each
    stacked slice alone, so network i ends where `train_classifier(models[i], ...,
    seeds[i])` ends, up to summation order."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    models = [model.to(device).train() for model in models]
    params, buffers = torch.func.stack_module_state(models)
    shape = copy.deepcopy(models[0]).to("meta")

    def one_loss(p, b, x, y, partner_y, ratio):
        logits = torch.func.functional_call(shape, (p, b), (x,))
        return mixed_cross_entropy(logits, y, partner_y, ratio)

    losses = torch.vmap(one_loss)
    optimizer, schedule, epochs = optimiser(params.values(), config, len(labels))
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        for batches in zip(*(epoch_batches(images, labels, None, config, g, device)
                             for g in generators)):
            mixes = [BATCH_MIXES[config.protocol](x, y, g)
                     for (x, y, _), g in zip(batches, generators)]
            x, y = torch.stack([m[0] for m in mixes]), torch.stack([b[1] for b in batches])
            partner_y = torch.stack([m[1] for m in mixes])
            ratio = torch.tensor([m[2] for m in mixes], device=device)
            with autocast(device):  # the sum keeps each network's gradients its own
                value = losses(params, buffers, x, y, partner_y, ratio).sum()
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        schedule.step()
    with torch.no_grad():
        for index, model in enumerate(models):
            model.load_state_dict({name: stacked[index] for name, stacked in
                                   [*params.items(), *buffers.items()]})
    return [prepare_model(model, device).eval() for model in models]


def optimiser(parameters, config: TrainConfig, n_images: int):
    """The protocol's optimiser, its per-epoch schedule and the number of epochs."""
    epochs = config.epochs_for(n_images)
    if config.protocol == "ncfm":
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=NCFM_WEIGHT_DECAY)
        milestones = [epochs * k // NCFM_PHASES for k in range(1, NCFM_PHASES)]
        milestones = [m for m in milestones if m > 0]  # a milestone 0 would decay at once
        return (optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones,
                                                                NCFM_DECAY), epochs)
    domaindrop = config.protocol == "domaindrop"
    optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=domaindrop)
    decay_at = max(1, int(epochs * DOMAINDROP_STEP_AT)) if domaindrop else epochs // 2
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, [decay_at], 0.1), epochs


def epoch_batches(images, labels, domains, config: TrainConfig, generator: torch.Generator,
                  device: torch.device):
    """One epoch's augmented batches (x, labels, domains or None) in the generator's order."""
    n = len(labels)
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, config.batch_size):
        index = order[start:start + config.batch_size]
        if len(index) < 2:  # BatchNorm needs two samples
            continue
        x = augment_batch(to_float(images[index], device), config.augment, generator,
                          config.dsa_draws, config.dsa_operations)
        yield (x, labels[index].to(device),
               domains[index].to(device) if domains is not None else None)


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
