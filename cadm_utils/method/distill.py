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


@dataclass
class GroupInputs:
    """One class group's matching inputs of a step (`group` None: all classes): its mask
    draw, the augmented real batch and the augmented decoded synthetic images."""
    group: int | None
    draw: MaskDraw
    real_x: torch.Tensor
    real_y: torch.Tensor
    real_d: torch.Tensor
    real_index: torch.Tensor
    syn_x: torch.Tensor
    syn_y: torch.Tensor
    syn_d: torch.Tensor


class Distillation:
    """One distillation run: the seeded generator and the initial set it draws first, then
    (for a set that is optimised) the expert pool, the pixels and their optimiser and the
    real sampler. `step()` is one step of the loop; the figures that show a step call the
    same `group_inputs` and losses on the same generator, so they show the run's own step.
    All randomness comes from the one generator, whose state a checkpoint keeps."""

    def __init__(self, experts, task: Task, method: Method, config: DistillConfig,
                 masking: MaskingConfig, seed: int, device: torch.device):
        self.task, self.method, self.config, self.masking = task, method, config, masking
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.synthetic = init_from_real(task.train, task.source_domains, config.ipc,
                                        config.factor, self.generator)
        if not self.optimised:
            return
        if isinstance(experts, torch.nn.Module):
            experts = [(experts, None)]
        self.pool = ExpertPool(experts, device, config.interpolate, config.interpolation)
        # the optimised pixels: a copy, so the run's initial set stays as it was drawn
        self.pixels = self.synthetic.images.detach().clone().to(device).requires_grad_(True)
        self.method_state = method.start(task, self.synthetic, device)
        self.parameters = [self.pixels, *self.method_state.parameters]
        self.optimizer = torch.optim.Adam(self.parameters, lr=config.lr)
        self.real = RealSampler(task, device)
        self.syn_labels = self.synthetic.labels.repeat_interleave(config.factor ** 2).to(device)
        self.syn_domains = self.synthetic.sub_domains.to(device)
        # the step's groups of classes: all at once, or one class after the other (NCFM)
        self.groups = [None] if config.class_steps == "all" else list(range(task.n_classes))
        labels = self.synthetic.labels
        self.rows = {None: slice(None), **{c: (self.syn_labels == c).nonzero().flatten()
                                           for c in range(task.n_classes)}}
        self.image_rows = {None: slice(None), **{c: (labels == c).nonzero().flatten().to(device)
                                                 for c in range(task.n_classes)}}

    @property
    def optimised(self) -> bool:
        return self.method.distills and self.config.steps > 0

    def augmented(self, x: torch.Tensor, params) -> torch.Tensor:
        config = self.config
        return augment_for_distillation(x, config.augment, params) if config.dsa else x

    def decoded(self, group) -> torch.Tensor:
        """The group's decoded synthetic rows, in the order of rows[group]."""
        return decode(self.pixels[self.image_rows[group]], self.config.factor)

    def group_inputs(self, group) -> GroupInputs:
        """A group's draws, in the loop's order: its mask draw, its real batch, the
        augmentation both batches share, the method's transform."""
        generator = self.generator
        draw = MaskDraw.sample(self.masking, generator)
        real_x, real_y, real_d, real_index = self.real.sample(self.config.real_per_class,
                                                              generator, group)
        params = sample_augmentation(self.config.augment, generator)  # shared by both batches
        real_x = self.augmented(real_x, params)
        syn_x = self.augmented(self.decoded(group), params)
        real_x, syn_x = self.method.transform(real_x, syn_x, generator)
        return GroupInputs(group, draw, real_x, real_y, real_d, real_index, syn_x,
                           self.syn_labels[self.rows[group]], self.syn_domains[self.rows[group]])

    def matching_loss(self, model, inputs: GroupInputs) -> torch.Tensor:
        with autocast(self.device):
            return self.method.matching_loss(
                model, self.masking, inputs.draw, self.task.n_classes, inputs.real_x,
                inputs.real_y, inputs.real_d, inputs.syn_x, inputs.syn_y, self.generator,
                self.method_state.for_batch(inputs.real_index, self.rows[inputs.group]))

    def calibration_losses(self, model, draw: MaskDraw, syn_x, group) -> dict:
        with autocast(self.device):
            return self.method.calibration_losses(model, self.masking, draw, syn_x,
                                                  self.syn_labels[self.rows[group]],
                                                  self.syn_domains[self.rows[group]],
                                                  self.generator)

    def take_step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.pixels.clamp_(0, 1)

    def step(self) -> dict[str, torch.Tensor]:
        """One step of the loop: draw the expert; per class group a matching step (with the
        calibration terms summed in, under phases "summed"); then `calib_steps` rounds of
        calibration steps. Returns the step's terms over its groups (`combined`)."""
        config = self.config
        match_model, calib_model = self.pool.draw(self.generator)
        draws, group_terms = [], []
        for group in self.groups:
            inputs = self.group_inputs(group)
            match = self.matching_loss(match_model, inputs)
            if config.phases == "summed":
                terms = {"match": match, **self.calibration_losses(
                    calib_model, inputs.draw, inputs.syn_x, group)}
                self.take_step(total_loss(terms, self.masking))
            else:
                self.take_step(match)
                terms = {"match": match.detach()}
            draws.append(inputs.draw)
            group_terms.append(terms)
        for _ in range(config.calib_steps if config.phases == "separate" else 0):
            for group, draw, terms in zip(self.groups, draws, group_terms):
                if group is not None:  # one draw per step; "all" shares the matching draw
                    draw = MaskDraw.sample(self.masking, self.generator)
                syn_x = self.augmented(self.decoded(group),
                                       sample_augmentation(config.augment, self.generator))
                calib = self.calibration_losses(calib_model, draw, syn_x, group)
                self.take_step(calibration_total(calib, self.masking))
                terms.update(calib)
        return combined(group_terms)

    def resume(self, checkpoint: Path) -> tuple[list[dict], int]:
        """(history, steps done) of a checkpoint, its parameters, optimiser and generator
        state restored."""
        state = torch.load(checkpoint, weights_only=False)
        with torch.no_grad():
            for tensor, saved in zip(self.parameters, state["parameters"]):
                tensor.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        return state["history"], state["step"]

    def save(self, checkpoint: Path, history: list[dict], done: int) -> None:
        save_atomic({"parameters": [p.detach().cpu() for p in self.parameters],
                     "optimizer": self.optimizer.state_dict(),
                     "generator": self.generator.get_state(), "history": history,
                     "step": done}, checkpoint)


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
    run = Distillation(experts, task, method, config, masking, seed, device)
    if not run.optimised:
        return run.synthetic, []
    history, start = [], 0
    if checkpoint is not None and checkpoint.exists():
        history, start = run.resume(checkpoint)
    bar = tqdm(range(start, config.steps), desc=f"distill {method.name} ipc{config.ipc}",
               disable=not progress, initial=start, total=config.steps, leave=False)
    for step in bar:
        history.append({k: v.detach() for k, v in run.step().items()})
        done = step + 1
        if checkpoint is not None and (done % config.checkpoint_every == 0 or done == config.steps):
            history = [{k: float(v) for k, v in h.items()} for h in history]  # one host sync
            run.save(checkpoint, history, done)
        if stop_after is not None and done >= stop_after:
            break
    history = [{k: float(v) for k, v in h.items()} for h in history]
    synthetic = run.synthetic
    synthetic.images = run.pixels.detach().cpu()
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
