"""ResNet-18 with a domain head after each residual block (paper Fig. 2), and evaluation nets.

Images enter as floats in [0, 1]; normalisation is the first layer, so synthetic images
can be optimised and clamped in pixel space.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ..errors import ConfigError
from ..schema import check_fields, setting

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
N_BLOCKS = 4


class GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -weight."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def grad_reverse(x: torch.Tensor, weight: float) -> torch.Tensor:
    return GradReverse.apply(x, weight)


class Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


STEMS = ("auto", "small", "strided", "imagenet")


@dataclass(frozen=True)
class ModelConfig:
    """The expert's ResNet: the profile's `model` section (defaults of every profile)."""
    width: int = setting(64, 1)  # base width (64 = the standard ResNet-18)
    stem: str = setting("auto", choices=STEMS)  # resolve_stem
    # the gradient reversal before the domain heads (DomainDrop models/LayerDiscriminator.py);
    # 0: the domain loss trains the heads only (the stop-gradient reading)
    grl_weight: float = setting(0.25, 0)

    def __post_init__(self):
        check_fields(self, "model.")


def resolve_stem(stem: str, resolution: int) -> str:
    """'auto': the small stem up to 64 px (the usual choice for CIFAR/Tiny-ImageNet sizes),
    the ImageNet stem above."""
    if stem not in STEMS:
        raise ConfigError(f"unknown ResNet stem '{stem}': expected one of {', '.join(STEMS)}")
    if stem == "auto":
        return "small" if resolution <= 64 else "imagenet"
    return stem


def make_stem(kind: str, width: int) -> nn.Sequential:
    """small: 3×3 stride 1; strided: 3×3 stride 2 (a quarter of the compute, for CPU
    profiles); imagenet: 7×7 stride 2 and a 3×3 max-pool."""
    if kind == "imagenet":
        return nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    stride = 2 if kind == "strided" else 1
    return nn.Sequential(nn.Conv2d(3, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True))


def resnet_layers(width: int, stem: str, block=BasicBlock, depths=(2, 2, 2, 2)):
    """torchvision's ResNet layers with the base width scaled (64 = standard ResNet-18)."""
    net = ResNet(block, list(depths))
    net.inplanes = width
    stem = make_stem(stem, width)
    blocks = nn.ModuleList([net._make_layer(block, width * 2 ** i, depth, stride=1 if i == 0 else 2)
                            for i, depth in enumerate(depths)])
    channels = [width * 2 ** i * block.expansion for i in range(len(depths))]
    _init_weights(nn.ModuleList([stem, blocks]))
    return stem, blocks, channels


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class DomainAwareResNet(nn.Module):
    """ResNet-18 backbone, class head, and a GAP + Linear(C_l, n_domains) head per block."""

    def __init__(self, n_classes: int, n_domains: int, width: int = 64, resolution: int = 64,
                 grl_weight: float = 0.25, block=BasicBlock, depths=(2, 2, 2, 2),
                 stem: str = "auto"):
        super().__init__()
        self.normalize = Normalize()
        self.stem, self.blocks, self.channels = resnet_layers(
            width, resolve_stem(stem, resolution), block, depths)
        self.classifier = nn.Linear(self.channels[-1], n_classes)
        self.domain_heads = nn.ModuleList([nn.Linear(c, n_domains) for c in self.channels])
        self.grl_weight = grl_weight

    def run_blocks(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks start..stop-1 on h; start=0 takes images (normalised, then the stem)."""
        if start == 0:
            h = self.stem(self.normalize(h))
        for block in self.blocks[start:stop]:
            h = block(h)
        return h

    def block_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(self.normalize(x))
        features = []
        for block in self.blocks:
            h = block(h)
            features.append(h)
        return features

    @staticmethod
    def pool(feature_map: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(feature_map, 1).flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The final embedding F(x) that MMD matches (Eq. 2)."""
        return self.pool(self.run_blocks(x, 0, N_BLOCKS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def domain_logits(self, features: list[torch.Tensor], reverse: bool) -> list[torch.Tensor]:
        pooled = [self.pool(f) for f in features]
        if reverse:
            pooled = [grad_reverse(p, self.grl_weight) for p in pooled]
        return [head(p) for head, p in zip(self.domain_heads, pooled)]

    def head_weight(self, block: int) -> torch.Tensor:
        """(n_domains, C) weight of the domain head after `block` (W in Eq. 5)."""
        return self.domain_heads[block].weight


# ----------------------------------------------------------------------------- evaluation nets
# Paper Table 3: synthetic sets distilled with ResNet-18, evaluated on other architectures.
# Channel counts follow the dataset-distillation reference codes (DC/DM) at scale 1 and are
# multiplied by `scale` = model width / 64 so that CPU profiles keep the shapes.

def _c(channels: int, scale: float) -> int:
    return max(4, int(round(channels * scale)))


class ConvNet(nn.Module):
    """ConvNet-3: [conv 3×3 (128) → instance norm → ReLU → avg-pool 2] × 3 → linear."""

    def __init__(self, n_classes: int, resolution: int, scale: float = 1.0, depth: int = 3):
        super().__init__()
        width = _c(128, scale)
        layers, channels = [Normalize()], 3
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1),
                       nn.GroupNorm(width, width, affine=True), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * (resolution // 2 ** depth) ** 2, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class AlexNet(nn.Module):
    """AlexNet for small images (the DC code's variant), global pooling before the head."""

    def __init__(self, n_classes: int, resolution: int, scale: float = 1.0):
        super().__init__()
        c1, c2, c3 = _c(128, scale), _c(192, scale), _c(256, scale)
        self.features = nn.Sequential(
            Normalize(),
            nn.Conv2d(3, c1, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(c2 * 16, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class VGG11(nn.Module):
    """VGG-11 with instance norm (the DC code's small-image variant), global average pool."""

    PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

    def __init__(self, n_classes: int, resolution: int, scale: float = 1.0):
        super().__init__()
        layers, channels = [Normalize()], 3
        for item in self.PLAN:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            width = _c(item, scale)
            layers += [nn.Conv2d(channels, width, 3, padding=1),
                       nn.GroupNorm(width, width, affine=True), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


EVAL_NETS = ("resnet18", "convnet", "alexnet", "vgg11", "resnet50")


def build_eval_net(name: str, n_classes: int, n_domains: int, resolution: int,
                   width: int, stem: str = "auto") -> nn.Module:
    """A fresh evaluation network; `width` is the profile's ResNet base width (64 = full),
    `stem` its ResNet stem."""
    scale = width / 64
    if name == "resnet18":
        return DomainAwareResNet(n_classes, n_domains, width, resolution, stem=stem)
    if name == "resnet50":
        return DomainAwareResNet(n_classes, n_domains, width, resolution, block=Bottleneck,
                                 depths=(3, 4, 6, 3), stem=stem)
    if name == "convnet":
        return ConvNet(n_classes, resolution, scale)
    if name == "alexnet":
        return AlexNet(n_classes, resolution, scale)
    if name == "vgg11":
        return VGG11(n_classes, resolution, scale)
    raise ConfigError(f"unknown evaluation network '{name}': expected one of {', '.join(EVAL_NETS)}")
