"""Differentiable siamese augmentation (DSA, Zhao & Bilen 2021) and crop+flip for pretraining.

As in the reference DSA code (mode 'S'), each call picks one operation group at random
and applies it; `shared=True` draws one set of parameters for the whole batch (used with
the same `DsaParams` for the real and the synthetic batch), `shared=False` one per image.

The reference codes run DSA on normalised tensors (DM's and NCFM's data are normalised when
loaded: VICO-UoE/DatasetCondensation utils.py get_dataset, DiffAugment), so a brightness
draw moves a pixel by up to ±0.5 std and crop, scale, rotate and cutout fill with 0 in
normalised space, the mean colour. This project's images are [0, 1] pixels (the networks
normalise inside), so `in_normalised_space` wraps the operations to act as there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..runtime import upcast

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
FLIP, SCALE, ROTATE_DEG, CROP, CUTOUT = 0.5, 1.2, 15.0, 0.125, 0.5
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5


@dataclass
class DsaParams:
    op: str
    values: dict  # tensors of shape (n,) or (1,) for shared parameters


def uniform_draws(size: int, generator: torch.Generator) -> dict:
    """An operation's four uniform parameters a, b, c, d, `size` values each (1: shared)."""
    return {name: torch.rand(size, generator=generator) for name in ("a", "b", "c", "d")}


def sample_dsa(n: int, generator: torch.Generator, shared: bool = True) -> DsaParams:
    op = OPS[int(torch.randint(len(OPS), (1,), generator=generator))]
    return DsaParams(op, uniform_draws(1 if shared else n, generator))


def apply_dsa(x: torch.Tensor, params: DsaParams) -> torch.Tensor:
    v = {k: t.to(x.device) for k, t in params.values.items()}
    if params.op == "color":
        x = x + (v["a"] - 0.5).view(-1, 1, 1, 1) * BRIGHTNESS
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (v["b"] * SATURATION).view(-1, 1, 1, 1) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (v["c"] + CONTRAST).view(-1, 1, 1, 1) + mean
    if params.op == "cutout":
        return x * cutout_mask(x, v["a"], v["b"])
    theta = torch.zeros(len(v["a"]), 2, 3, device=x.device, dtype=x.dtype)
    if params.op == "flip":
        sign = torch.where(v["a"] < FLIP, -1.0, 1.0)
        theta[:, 0, 0], theta[:, 1, 1] = sign, 1.0
    elif params.op == "scale":
        theta[:, 0, 0] = v["a"] * (SCALE - 1 / SCALE) + 1 / SCALE
        theta[:, 1, 1] = v["b"] * (SCALE - 1 / SCALE) + 1 / SCALE
    elif params.op == "rotate":
        angle = (v["a"] - 0.5) * 2 * ROTATE_DEG / 180 * math.pi
        theta[:, 0, 0], theta[:, 0, 1] = angle.cos(), -angle.sin()
        theta[:, 1, 0], theta[:, 1, 1] = angle.sin(), angle.cos()
    else:  # crop: translate by up to CROP of the size, zero padding
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = (v["a"] - 0.5) * 4 * CROP
        theta[:, 1, 2] = (v["b"] - 0.5) * 4 * CROP
    theta = theta.expand(len(x), 2, 3) if len(theta) == 1 else theta
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def cutout_mask(x: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    size = x.shape[-1]
    half = int(size * CUTOUT / 2)
    coords = torch.arange(size, device=x.device)
    centre_x, centre_y = (cx * size).long().view(-1, 1), (cy * size).long().view(-1, 1)
    keep_x = (coords.view(1, -1) - centre_x).abs() >= half
    keep_y = (coords.view(1, -1) - centre_y).abs() >= half
    keep = keep_y[:, :, None] | keep_x[:, None, :]
    return keep[:, None].to(x.dtype)


# NCFM's distillation augmentation (config: color + crop + cutout), applied in sequence
NCFM_OPS = ("color", "crop", "cutout")


def sample_augmentation(kind: str, generator: torch.Generator) -> list[DsaParams]:
    """One shared draw for a distillation step, used for the real and the synthetic batch:
    'ncfm' draws color, crop and cutout (applied in sequence, as DSA's DiffAugment does
    for a strategy without its one-of mode); 'dsa' one of the six DSA operations."""
    if kind == "ncfm":
        return [DsaParams(op, uniform_draws(1, generator)) for op in NCFM_OPS]
    return [sample_dsa(1, generator, shared=True)]


def apply_all(x: torch.Tensor, params: list[DsaParams]) -> torch.Tensor:
    """The operations of `params` in sequence."""
    for p in params:
        x = apply_dsa(x, p)
    return x


def in_normalised_space(x: torch.Tensor, params: list[DsaParams]) -> torch.Tensor:
    """`apply_all` on the normalised image (x − MEAN) / STD, returned as [0, 1]-scale
    pixels: what the operations do in DM and NCFM, whose tensors are normalised when loaded.
    An image of the mean colour is 0 there, so every fill is the mean colour, and a
    brightness draw b moves channel c by (b − 0.5)·STD[c]."""
    from .models import MEAN, STD

    mean = x.new_tensor(MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(STD).view(1, 3, 1, 1)
    return apply_all((x - mean) / std, params) * std + mean


def augment_for_distillation(x: torch.Tensor, kind: str, params: list[DsaParams]) -> torch.Tensor:
    """'ncfm': the operations act on normalised images, as in NCFM and DM (which normalise
    before DSA). 'dsa': on [0, 1] pixels."""
    return in_normalised_space(x, params) if kind == "ncfm" else apply_all(x, params)


# How the evaluation's DSA draws: DRAWS, parameters per image (DiffAugment's seed −1, DM's
# evaluation) or one draw shared by the batch (DiffAugment's batchmode); OPERATIONS, one
# operation a batch (its mode 'S', DM's ParamDiffAug) or every operation of the strategy in
# its order (mode 'M'; VICO-UoE/DatasetCondensation utils.py DiffAugment)
DRAWS, OPERATIONS = ("image", "batch"), ("one", "all")


def sample_evaluation_dsa(n: int, generator: torch.Generator, draws: str = "image",
                          operations: str = "one") -> list[DsaParams]:
    """The DSA draws of one evaluation batch of n images (see DRAWS and OPERATIONS)."""
    size = 1 if draws == "batch" else n
    if operations == "all":
        return [DsaParams(op, uniform_draws(size, generator)) for op in OPS]
    return [sample_dsa(n, generator, shared=draws == "batch")]


def dsa(x: torch.Tensor, generator: torch.Generator, normalised: bool = True,
        draws: str = "image", operations: str = "one") -> torch.Tensor:
    """DM's evaluation augmentation (utils.py `epoch(..., aug=True)` → `DiffAugment(img,
    args.dsa_strategy, param=args.dsa_param)`, seed −1, mode 'S'): one of the six operations
    a batch, its parameters drawn per image, on normalised images (`normalised=False`: on
    [0, 1] pixels, this project's evaluation before it followed DM there). `draws` and
    `operations` depart from DM's evaluation where an ablation asks."""
    params = sample_evaluation_dsa(len(x), generator, draws, operations)
    return in_normalised_space(x, params) if normalised else apply_all(x, params)


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, one draw per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, 3, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, 3, h, w)
    cropped = cropped.gather(3, cols)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
    return torch.where(flip, cropped.flip(3), cropped)


def amplitude_mix(x: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """FACT's Fourier amplitude mix (Xu et al. 2021) over the whole spectrum: each image
    keeps its phase and takes (1 − λ)·A + λ·A_partner as amplitude. Differentiable.
    lam: (B,) mixing weights; partner: (B,) index of the image whose amplitude is mixed in."""
    spectrum = torch.fft.fft2(upcast(x))
    amplitude, phase = spectrum.abs(), spectrum.angle()
    lam = lam.to(x.device, amplitude.dtype).view(-1, 1, 1, 1)
    mixed = (1 - lam) * amplitude + lam * amplitude[partner.to(x.device)]
    return torch.fft.ifft2(torch.polar(mixed, phase)).real.to(x.dtype)


def random_amplitude_mix(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Amplitude mix with λ ~ U(0, 1) and a random partner from the same batch."""
    n = len(x)
    return amplitude_mix(x, torch.rand(n, generator=generator),
                         torch.randperm(n, generator=generator))


# NCFM's evaluation (config/ipc*/*.yaml: mixup cut, mix_p 0.5, beta 1.0; utils/train_val.py
# train_epoch): CutMix (Yun et al. 2019) on a share CUTMIX_P of the batches
CUTMIX_P = 0.5


def cut_box(height: int, width: int, keep: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """CutMix's box: sides √(1 − keep) of the image's, centred at pixel (cy, cx), clipped
    to the image; (top, bottom, left, right), bottom and right excluded."""
    side = math.sqrt(1.0 - keep)
    half_h, half_w = int(height * side) // 2, int(width * side) // 2
    return (min(max(cy - half_h, 0), height), min(max(cy + half_h, 0), height),
            min(max(cx - half_w, 0), width), min(max(cx + half_w, 0), width))


def cutmix(x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
           p: float = CUTMIX_P) -> tuple[torch.Tensor, torch.Tensor, float]:
    """With probability p, each image takes one box (the same for the batch) from a partner
    image (a random permutation of the batch), λ ~ Beta(1, 1) = U(0, 1). Returns (images,
    partner labels, ratio), ratio the share of each image still its own (1: no mix)."""
    if torch.rand(1, generator=generator).item() >= p:
        return x, labels, 1.0
    keep = torch.rand(1, generator=generator).item()
    partner = torch.randperm(len(x), generator=generator).to(x.device)
    height, width = x.shape[-2:]
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    top, bottom, left, right = cut_box(height, width, keep, cy, cx)
    mixed = x.clone()
    mixed[..., top:bottom, left:right] = x[partner, :, top:bottom, left:right]
    ratio = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, labels[partner.to(labels.device)], ratio
