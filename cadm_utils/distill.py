"""The distillation loop: optimise synthetic pixels against a frozen expert, with
checkpoints that make an interrupted run resume to the same result."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .augment import apply_dsa, random_amplitude_mix, sample_dsa
from .dam import N_PSEUDO, pseudo_domains
from .data import Task
from .errors import ConfigError
from .methods import MaskingConfig, Method, distillation_losses, total_loss
from .runtime import autocast, save_atomic, to_float
from .synthetic import SyntheticSet, decode, init_from_real


@dataclass(frozen=True)
class DistillConfig:
    ipc: int
    steps: int = 1000
    real_per_class: int = 128
    lr: float = 0.01  # Adam on pixels
    factor: int = 2  # multi-formation ρ
    dsa: bool = True
    checkpoint_every: int = 100

    def __post_init__(self):
        if self.steps < 0 or self.real_per_class < 1 or self.lr <= 0:
            raise ConfigError(f"invalid distillation setting: steps={self.steps}, "
                              f"real_per_class={self.real_per_class}, lr={self.lr}")


class RealSampler:
    """Draws `per_class` real images of every class (without replacement within a class)."""

    def __init__(self, task: Task, device: torch.device, with_pseudo_domains: bool = False):
        self.images = task.train.images.to(device)
        self.labels = task.train.labels.to(device)
        self.domains = task.train.domains.to(device)
        self.pseudo = pseudo_domains(task.train.images).to(device) if with_pseudo_domains else None
        self.by_class = [(task.train.labels == c).nonzero().flatten()
                         for c in range(task.n_classes)]

    def sample(self, per_class: int, generator: torch.Generator):
        """(images, labels, domains, index into the training set)."""
        index = torch.cat([members[torch.randperm(len(members), generator=generator)[:per_class]]
                           for members in self.by_class]).to(self.images.device)
        return (to_float(self.images[index], self.images.device), self.labels[index],
                self.domains[index], index)


def distill(model: torch.nn.Module, task: Task, method: Method, config: DistillConfig,
            masking: MaskingConfig, seed: int, device: torch.device,
            checkpoint: Path | None = None, progress: bool = True,
            stop_after: int | None = None) -> tuple[SyntheticSet, list[dict]]:
    """Returns the synthetic set and the loss history (one dict per step).

    All randomness (real batches, DSA, masking block, masks) comes from one generator
    whose state is checkpointed, so resuming reproduces the uninterrupted run on the CPU.
    `stop_after` ends early after that many steps (to test interruption)."""
    generator = torch.Generator().manual_seed(seed)
    synthetic = init_from_real(task.train, task.source_domains, config.ipc, config.factor,
                               generator)
    if not method.distill or config.steps == 0:
        return synthetic, []
    model = model.to(device).eval().requires_grad_(False)
    pixels = synthetic.images.to(device).requires_grad_(True)
    parameters = [pixels]
    if method.dam:  # DAM's soft masks, one per decoded image and pseudo-domain
        h, w = synthetic.images.shape[-2:]  # decoded images keep the full size
        mask_logits = torch.zeros(len(synthetic.sub_domains), N_PSEUDO, h, w, device=device,
                                  requires_grad=True)
        parameters.append(mask_logits)
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
    real = RealSampler(task, device, with_pseudo_domains=method.dam)
    syn_labels = synthetic.labels.repeat_interleave(config.factor ** 2).to(device)
    syn_domains = synthetic.sub_domains.to(device)
    bar = tqdm(range(start, config.steps), desc=f"distill {method.name} ipc{config.ipc}",
               disable=not progress, initial=start, total=config.steps, leave=False)
    for step in bar:
        real_x, real_y, real_d, real_index = real.sample(config.real_per_class, generator)
        syn_x = decode(pixels, config.factor)
        if config.dsa:
            params = sample_dsa(1, generator, shared=True)  # the same draw for both batches
            real_x, syn_x = apply_dsa(real_x, params), apply_dsa(syn_x, params)
        if method.fact:
            real_x = random_amplitude_mix(real_x, generator)
            syn_x = random_amplitude_mix(syn_x, generator)
        dam_state = {"mask_logits": mask_logits, "real_pseudo": real.pseudo[real_index]} \
            if method.dam else None
        with autocast(device):
            terms = distillation_losses(model, method, masking, task.n_classes, real_x, real_y,
                                        real_d, syn_x, syn_labels, syn_domains, generator,
                                        dam_state)
            loss = total_loss(terms, masking)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)
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
