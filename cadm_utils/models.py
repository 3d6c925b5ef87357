"""ResNet-18 with a domain head after each residual block (paper Fig. 2), and evaluation nets.

Images enter as floats in [0, 1]; normalisation is the first layer, so synthetic images
can be optimised and clamped in pixel space.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, ResNet

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


def resnet_layers(width: int, small_stem: bool, block=BasicBlock, depths=(2, 2, 2, 2)):
    """torchvision's ResNet layers with the base width scaled (64 = standard ResNet-18)."""
    net = ResNet(block, list(depths))
    net.inplanes = width
    if small_stem:  # inputs ≤ 64 px: 3×3 stride-1 stem, no max-pool
        stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU(inplace=True))
    else:
        stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
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
                 grl_weight: float = 0.25, block=BasicBlock, depths=(2, 2, 2, 2)):
        super().__init__()
        self.normalize = Normalize()
        self.stem, self.blocks, self.channels = resnet_layers(width, resolution <= 64, block, depths)
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
