"""The embedded benchmark: a PACS-like multi-domain image set generated from a seed.

Classes differ in content (the shape drawn), domains differ in style, the way PACS does:
  art_painting  colourful low-frequency background, brush-stroke texture, soft edges
  cartoon       flat pastel background, flat saturated fill, thick black outline
  photo         smooth gradient background, shaded object, fine sensor noise
  sketch        white paper, thin jittery dark strokes and hatching, no colour
Colours, positions, sizes and rotations (within ±20°) are random and independent of the
class, so only the shape carries the label. Domain sizes are unequal, as in PACS.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import MultiDomainData, random_split

DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
LETTERS = ("A", "C", "P", "S")
CLASSES = ("disk", "square", "triangle", "cross", "ring")
# images per class in each domain; the ratio follows PACS (2048 : 2344 : 1670 : 3929)
DEFAULT_PER_CLASS = (80, 90, 70, 150)
VAL_FRACTION = 0.2
MAX_ROTATION = math.pi / 9  # ±20°: with free rotation a width-8 net needs 2-3x the CPU budget
# what makes the pixels besides the seed and resolution: part of every product key
GENERATOR_SETTINGS = {"version": 2, "max_rotation": MAX_ROTATION, "per_class": DEFAULT_PER_CLASS,
                      "val_fraction": VAL_FRACTION}


def make_embedded_benchmark(seed: int = 0, resolution: int = 32,
                            per_class: tuple[int, ...] = DEFAULT_PER_CLASS):
    generator = torch.Generator().manual_seed(seed)
    images, labels, domains = [], [], []
    for d, style in enumerate(DOMAINS):
        for c, _ in enumerate(CLASSES):
            n = per_class[d]
            images.append(render(style, torch.full((n,), c), resolution, generator))
            labels.append(torch.full((n,), c))
            domains.append(torch.full((n,), d))
    labels, domains = torch.cat(labels), torch.cat(domains)
    uint8 = (torch.cat(images).clamp(0, 1) * 255).round().to(torch.uint8)
    split = random_split(labels, domains, VAL_FRACTION, seed)
    return MultiDomainData("embedded", uint8, labels, domains, split, list(CLASSES),
                           list(DOMAINS), list(LETTERS))


# ----------------------------------------------------------------------------- geometry

def _rand(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def shape_sdf(shape_ids: torch.Tensor, resolution: int, generator: torch.Generator) -> torch.Tensor:
    """Signed distance (in pixels, negative inside) of one random shape per image."""
    n = len(shape_ids)
    axis = torch.linspace(-1, 1, resolution)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    cx, cy = _rand(n, -0.2, 0.2, generator), _rand(n, -0.2, 0.2, generator)
    size = _rand(n, 0.45, 0.7, generator)
    angle = _rand(n, -MAX_ROTATION, MAX_ROTATION, generator)
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    px, py = (cos * dx + sin * dy) / size[:, None, None], (-sin * dx + cos * dy) / size[:, None, None]
    sdfs = torch.stack([_disk(px, py), _box(px, py, 0.8, 0.8), _triangle(px, py),
                        torch.minimum(_box(px, py, 1.0, 0.3), _box(px, py, 0.3, 1.0)),
                        (_disk(px, py) + 0.3).abs() - 0.25])
    chosen = sdfs[shape_ids, torch.arange(n)]
    return chosen * size[:, None, None] * resolution / 2


def _disk(px, py):
    return torch.sqrt(px ** 2 + py ** 2) - 1.0


def _box(px, py, half_w, half_h):
    qx, qy = px.abs() - half_w, py.abs() - half_h
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _triangle(px, py, r: float = 1.0):
    """Equilateral triangle of circumradius-like size r (exact 2-D distance)."""
    k = math.sqrt(3.0)
    px = px.abs() - r
    py = py + r / k
    fold = px + k * py > 0
    px, py = (torch.where(fold, (px - k * py) / 2, px), torch.where(fold, (-k * px - py) / 2, py))
    px = px - px.clamp(-2 * r, 0)
    return -torch.sqrt(px ** 2 + py ** 2) * torch.sign(py)


def smooth_noise(n: int, channels: int, cells: int, resolution: int,
                 generator: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(n, channels, cells, cells, generator=generator)
    return F.interpolate(coarse, size=(resolution, resolution), mode="bicubic",
                         align_corners=False).clamp(0, 1)


def random_colours(n: int, saturation: tuple[float, float], value: tuple[float, float],
                   generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 1, 1) RGB colours from random hue and the given saturation/value ranges."""
    hue = torch.rand(n, generator=generator)
    sat = _rand(n, *saturation, generator)
    val = _rand(n, *value, generator)
    offsets = torch.tensor([0.0, 2 / 3, 1 / 3])
    wave = ((hue[:, None] + offsets) * 2 * math.pi).cos() * 0.5 + 0.5
    rgb = val[:, None] * (1 - sat[:, None] + sat[:, None] * wave)
    return rgb[:, :, None, None]


# ----------------------------------------------------------------------------- styles

def render(style: str, shape_ids: torch.Tensor, resolution: int,
           generator: torch.Generator) -> torch.Tensor:
    """(n, 3, R, R) float images in [0, 1] of the given domain style."""
    sdf = shape_sdf(shape_ids, resolution, generator)[:, None]
    return STYLES[style](sdf, resolution, generator)


def _photo(sdf, resolution, generator):
    n = sdf.shape[0]
    axis = torch.linspace(0, 1, resolution)
    ramp = axis[None, None, :, None] * _rand(n, -1, 1, generator)[:, None, None, None] + \
        axis[None, None, None, :] * _rand(n, -1, 1, generator)[:, None, None, None]
    ramp = (ramp - ramp.amin((2, 3), keepdim=True)) / (ramp.amax((2, 3), keepdim=True) -
                                                         ramp.amin((2, 3), keepdim=True) + 1e-6)
    dark_object = torch.rand(n, generator=generator) < 0.5  # object darker or lighter
    bg_value = torch.where(dark_object, _rand(n, 0.6, 0.9, generator), _rand(n, 0.15, 0.4, generator))
    bg_a = random_colours(n, (0.1, 0.5), (0.9, 1.0), generator) * bg_value[:, None, None, None]
    bg_b = random_colours(n, (0.1, 0.5), (0.8, 1.0), generator) * bg_value[:, None, None, None]
    background = bg_a * ramp + bg_b * (1 - ramp) + 0.15 * (smooth_noise(n, 1, 5, resolution,
                                                                         generator) - 0.5)
    fill = torch.sigmoid(-sdf * 2.0)
    shading = 0.55 + 0.45 * torch.sigmoid(sdf / 3.0 + 1.0) * smooth_noise(n, 1, 3, resolution,
                                                                           generator)
    obj_value = torch.where(dark_object, _rand(n, 0.1, 0.35, generator), _rand(n, 0.7, 1.0, generator))
    obj = random_colours(n, (0.3, 0.8), (0.9, 1.0), generator) * obj_value[:, None, None, None]
    image = fill * obj * shading + (1 - fill) * background
    shadow = 1 - 0.4 * torch.exp(-((sdf - 1.0) / 1.5) ** 2)  # soft shadow along the rim
    return image * shadow + 0.04 * torch.randn(image.shape, generator=generator)


def _cartoon(sdf, resolution, generator):
    n = sdf.shape[0]
    background = random_colours(n, (0.15, 0.35), (0.85, 1.0), generator)
    obj = random_colours(n, (0.8, 1.0), (0.8, 1.0), generator)
    width = resolution / 16
    fill = (sdf < 0).float()
    outline = (sdf.abs() < width).float()
    image = fill * obj + (1 - fill) * background
    return image * (1 - outline)


def _sketch(sdf, resolution, generator):
    n = sdf.shape[0]
    jitter = (smooth_noise(n, 1, 6, resolution, generator) - 0.5) * resolution / 10
    stroke = torch.exp(-((sdf + jitter) / (resolution / 40)) ** 2)
    axis = torch.linspace(0, 1, resolution)
    angle = _rand(n, 0, math.pi, generator)[:, None, None, None]
    phase = axis[None, None, :, None] * angle.sin() + axis[None, None, None, :] * angle.cos()
    hatching = (torch.sin(phase * resolution * 1.2) > 0.6).float()
    hatching = hatching * (sdf < -1).float() * (torch.rand(n, 1, 1, 1, generator=generator) < 0.6)
    wash = (sdf < 0).float() * _rand(n, 0.0, 0.3, generator)[:, None, None, None]
    ink = (stroke + 0.5 * hatching + wash).clamp(0, 1)
    paper = _rand(n, 0.9, 1.0, generator)[:, None, None, None]
    gray = paper * (1 - 0.85 * ink) - 0.03 * smooth_noise(n, 1, 8, resolution, generator)
    return gray.expand(-1, 3, -1, -1)


def _art_painting(sdf, resolution, generator):
    n = sdf.shape[0]
    background = 0.1 + 0.45 * smooth_noise(n, 3, 3, resolution, generator)
    axis = torch.linspace(0, 1, resolution)
    angle = _rand(n, 0, math.pi, generator)[:, None, None, None]
    along = axis[None, None, :, None] * angle.sin() + axis[None, None, None, :] * angle.cos()
    wobble = 4 * smooth_noise(n, 1, 6, resolution, generator)
    brush = 0.18 * torch.sin(along * resolution * 0.8 + wobble)
    fill = torch.sigmoid(-sdf * 0.8)
    obj = random_colours(n, (0.5, 0.9), (0.7, 1.0), generator)
    contour = 1 - 0.5 * torch.exp(-(sdf / 2) ** 2)
    image = (fill * obj + (1 - fill) * background) * contour
    return image * (1 + brush)


STYLES = {"art_painting": _art_painting, "cartoon": _cartoon, "photo": _photo, "sketch": _sketch}
