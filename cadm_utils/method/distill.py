"""The distillation loop: optimise synthetic pixels against a frozen expert, with
checkpoints that make an interrupted run resume to the same result."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import Task
from ..errors import ConfigError
from ..runtime import autocast, prepare_model, save_atomic, to_float
from ..schema import check_fields, setting
from .augment import augment_for_distillation, sample_augmentation
from .masking import MaskDraw, MaskingConfig
from .methods import Method, calibration_total, total_loss
from .synthetic import SyntheticSet, decode, init_from_real


@dataclass(frozen=True)
class DistillConfig:
    """How a synthetic set is distilled: the profile's `distill` section (every field but
    `ipc` and `dsa`), whose defaults are the defaults of every profile."""
    ipc: int = 0  # images per class of the cell (0: the profile's section, no cell yet)
    steps: int = setting(1000, 0)
    real_per_class: int = setting(128, 1)  # real images per class in each step
    # Adam on pixels at NCFM's rate (its AdamW lr_img 0.01 × lr_scale_adam 0.1)
    lr: float = setting(0.001, 1e-12)
    factor: int = setting(2, 1)  # multi-formation ρ
    dsa: bool = True  # augment real and synthetic batches (off only in tests)
    checkpoint_every: int = setting(100, 1)
    # NCFM condenser/compute_loss.py: a matching step, then `calib_steps` calibration steps
    # (iter_calib); "summed": one step on L_match + L_reg + λ L_cons
    phases: str = setting("separate", choices=("separate", "summed"))
    calib_steps: int = setting(1, 0)
    # NCFM utils/utils.py update_feature_extractor: match on l·init + (1−l)·trained
    interpolate: bool = setting(True)
    # what the interpolation covers: "parameters" is NCFM's (parameters() only, BatchNorm
    # on batch statistics, heads as trained); "all" every floating tensor, matching in eval
    # mode (what the profiles measured before NCFM's was built pin it); docs/method.md
    interpolation: str = setting("parameters", choices=("all", "parameters"))
    # "ncfm": color + crop + cutout on normalised images; "dsa": one of DSA's six ops
    augment: str = setting("ncfm", choices=("ncfm", "dsa"))
    # NCFM condenser/compute_loss.py: one optimiser step per class in each phase, each with
    # its own mask draw; "all": one step on all classes per phase, one draw for the phases
    class_steps: str = setting("per_class", choices=("per_class", "all"))

    def __post_init__(self):
        check_fields(self, "distill.")


class RealSampler:
    """Draws `per_class` real images of every class, or of one class (without replacement
    within a class)."""

    def __init__(self, task: Task, device: torch.device):
        self.images = task.train.images.to(device)
        self.labels = task.train.labels.to(device)
        self.domains = task.train.domains.to(device)
        self.by_class = [(task.train.labels == c).nonzero().flatten()
                         for c in range(task.n_classes)]

    def sample(self, per_class: int, generator: torch.Generator, only: int | None = None):
        """(images, labels, domains, index into the training set); `only`: one class."""
        classes = self.by_class if only is None else [self.by_class[only]]
        index = torch.cat([members[torch.randperm(len(members), generator=generator)[:per_class]]
                           for members in classes]).to(self.images.device)
        return (to_float(self.images[index], self.images.device), self.labels[index],
                self.domains[index], index)


class ExpertPool:
    """NCFM's feature extractors (utils/utils.py, update_feature_extractor): each step draws
    one of K pretrained experts; matching uses l·init + (1 − l)·trained with l ~ U(0, 1),
    calibration the trained expert. `interpolation` "all": every floating tensor
    (parameters, BatchNorm statistics, domain heads), matching in eval mode; "parameters":
    as NCFM, the parameters only, matching in train mode (BatchNorm on batch statistics),
    the domain heads kept as trained (Eq. 5 from the trained expert's heads)."""

    def __init__(self, experts: list[tuple[torch.nn.Module, torch.nn.Module | None]],
                 device: torch.device, interpolate: bool, interpolation: str):
        if interpolate and any(init is None for _, init in experts):
            raise ConfigError("interpolation needs each expert's initial weights")
        self.trained = [prepare_model(m, device).eval().requires_grad_(False) for m, _ in experts]
        self.initial = [prepare_model(i, device).eval().requires_grad_(False)
                        if i is not None else None for _, i in experts]
        self.interpolate, self.interpolation = interpolate, interpolation
        self.work = copy.deepcopy(self.trained[0]) if interpolate else None
        if self.work is not None and interpolation == "parameters":
            self.work.train()

    def draw(self, generator: torch.Generator) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(matching model, calibration model) for one step."""
        k = int(torch.randint(len(self.trained), (1,), generator=generator))
        if not self.interpolate:
            return self.trained[k], self.trained[k]
        weight = float(torch.rand(1, generator=generator))
        if self.interpolation == "parameters":
            interpolate_parameters(self.work, self.initial[k], self.trained[k], weight)
        else:
            interpolate_into(self.work, self.initial[k], self.trained[k], weight)
        return self.work, self.trained[k]


@torch.no_grad()
def interpolate_into(out: torch.nn.Module, initial: torch.nn.Module, trained: torch.nn.Module,
                     weight: float) -> None:
    """out ← weight·initial + (1 − weight)·trained, for every floating tensor of the state."""
    for target, a, b in zip(out.state_dict().values(), initial.state_dict().values(),
                            trained.state_dict().values()):
        if target.is_floating_point():
            target.copy_(weight * a + (1 - weight) * b)
        else:
            target.copy_(b)


@torch.no_grad()
def interpolate_parameters(out: torch.nn.Module, initial: torch.nn.Module,
                           trained: torch.nn.Module, weight: float,
                           kept: str = "domain_heads.") -> None:
    """NCFM's interpolation: out's parameters ← weight·initial + (1 − weight)·trained, but
    those named `kept…` (the domain heads) ← trained; buffers ← trained (in train mode
    BatchNorm normalises with batch statistics and only updates them)."""
    for (name, target), a, b in zip(out.named_parameters(), initial.parameters(),
                                    trained.parameters()):
        target.copy_(b if name.startswith(kept) else weight * a + (1 - weight) * b)
    for target, b in zip(out.buffers(), trained.buffers()):
        target.copy_(b)


def distill(experts, task: Task, method: Method, config: DistillConfig,
            masking: MaskingConfig, seed: int, device: torch.device,
            checkpoint: Path | None = None, progress: bool = True,
            stop_after: int | None = None) -> tuple[SyntheticSet, list[dict]]:
    """Returns the synthetic set and the loss history (one dict per step).

    `experts`: a list of (trained, initial) models (initial may be None without
    interpolation), or one trained model. All randomness (real batches, augmentation,
    expert, interpolation, masking block, masks) comes from one generator whose state is
    checkpointed, so resuming reproduces the uninterrupted run on the CPU.
    `stop_after` ends early after that many steps (to test interruption)."""
    generator = torch.Generator().manual_seed(seed)
    synthetic = init_from_real(task.train, task.source_domains, config.ipc, config.factor,
                               generator)
    if not method.distills or config.steps == 0:
        return synthetic, []
    if isinstance(experts, torch.nn.Module):
        experts = [(experts, None)]
    pool = ExpertPool(experts, device, config.interpolate, config.interpolation)
    pixels = synthetic.images.to(device).requires_grad_(True)
    method_state = method.start(task, synthetic, device)
    parameters = [pixels, *method_state.parameters]
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    history, start = [], 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        with torch.no_grad():
            for tensor, saved in zip(parameters, state["parameters"]):
                tensor.copy_(saved)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        history, start = state["history"], state["step"]
    real = RealSampler(task, device)
    syn_labels = synthetic.labels.repeat_interleave(config.factor ** 2).to(device)
    syn_domains = synthetic.sub_domains.to(device)

    def augmented(x, params):
        return augment_for_distillation(x, config.augment, params) if config.dsa else x

    def take_step(loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)

    bar = tqdm(range(start, config.steps), desc=f"distill {method.name} ipc{config.ipc}",
               disable=not progress, initial=start, total=config.steps, leave=False)
    # the step's groups of classes: all at once, or one class after the other (NCFM)
    groups = [None] if config.class_steps == "all" else list(range(task.n_classes))
    rows = {None: slice(None), **{c: (syn_labels == c).nonzero().flatten()
                                  for c in range(task.n_classes)}}
    image_rows = {None: slice(None), **{c: (synthetic.labels == c).nonzero().flatten().to(device)
                                        for c in range(task.n_classes)}}

    def decoded(group):  # the group's decoded rows, in the order of rows[group]
        return decode(pixels[image_rows[group]], config.factor)

    for step in bar:
        match_model, calib_model = pool.draw(generator)
        draws, group_terms = [], []
        for group in groups:
            draw = MaskDraw.sample(masking, generator)
            real_x, real_y, real_d, real_index = real.sample(config.real_per_class, generator,
                                                             group)
            params = sample_augmentation(config.augment, generator)  # shared by both batches
            real_x = augmented(real_x, params)
            syn_x = augmented(decoded(group), params)
            real_x, syn_x = method.transform(real_x, syn_x, generator)
            syn_y, syn_d = syn_labels[rows[group]], syn_domains[rows[group]]
            with autocast(device):
                match = method.matching_loss(match_model, masking, draw, task.n_classes, real_x,
                                             real_y, real_d, syn_x, syn_y, generator,
                                             method_state.for_batch(real_index, rows[group]))
            if config.phases == "summed":
                with autocast(device):
                    terms = {"match": match, **method.calibration_losses(
                        calib_model, masking, draw, syn_x, syn_y, syn_d, generator)}
                take_step(total_loss(terms, masking))
            else:
                take_step(match)
                terms = {"match": match.detach()}
            draws.append(draw)
            group_terms.append(terms)
        for _ in range(config.calib_steps if config.phases == "separate" else 0):
            for group, draw, terms in zip(groups, draws, group_terms):
                if group is not None:  # one draw per step; "all" shares the matching draw
                    draw = MaskDraw.sample(masking, generator)
                syn_x = augmented(decoded(group), sample_augmentation(config.augment, generator))
                with autocast(device):
                    calib = method.calibration_losses(calib_model, masking, draw, syn_x,
                                                      syn_labels[rows[group]],
                                                      syn_domains[rows[group]], generator)
                take_step(calibration_total(calib, masking))
                terms.update(calib)
        terms = combined(group_terms)
        history.append({k: v.detach() for k, v in terms.items()})
        done = step + 1
        if checkpoint is not None and (done % config.checkpoint_every == 0 or done == config.steps):
            history = [{k: float(v) for k, v in h.items()} for h in history]  # one host sync
            save_atomic({"parameters": [p.detach().cpu() for p in parameters],
                          "optimizer": optimizer.state_dict(),
                          "generator": generator.get_state(), "history": history,
                          "step": done}, checkpoint)
        if stop_after is not None and done >= stop_after:
            break
    history = [{k: float(v) for k, v in h.items()} for h in history]
    synthetic.images = pixels.detach().cpu()
    return synthetic, history


def combined(group_terms: list[dict]) -> dict[str, torch.Tensor]:
    """One step's terms over its class groups: the matching losses summed (as one batch of
    all classes sums them), L_reg and L_cons averaged (as one batch averages them)."""
    match = torch.stack([t["match"] for t in group_terms]).sum()
    terms = {"match": match}
    for name in ("reg", "cons"):
        values = [t[name] for t in group_terms if name in t]
        terms[name] = torch.stack(values).mean() if values else match.new_zeros(())
    return terms
