"""The synthetic set: initialised from real images with equal numbers per source domain,
stored with multi-formation (factor ρ: each stored image holds ρ×ρ sub-images)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import MultiDomainData
from ..errors import ConfigError


@dataclass
class SyntheticSet:
    images: torch.Tensor  # (K·IPC, 3, H, W) float in [0, 1], the optimised pixels
    labels: torch.Tensor  # (K·IPC,) class of each stored image
    sub_domains: torch.Tensor  # (K·IPC·ρ²,) source domain each decoded sub-image came from
    factor: int

    def decoded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, labels, domains) of the ρ² sub-images per stored image."""
        return (decode(self.images, self.factor),
                self.labels.repeat_interleave(self.factor ** 2), self.sub_domains)

    def state(self) -> dict:
        return {"images": self.images.detach().cpu(), "labels": self.labels.cpu(),
                "sub_domains": self.sub_domains.cpu(), "factor": self.factor}

    @classmethod
    def from_state(cls, state: dict) -> "SyntheticSet":
        return cls(state["images"], state["labels"], state["sub_domains"], state["factor"])


def decode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Split each image into factor×factor tiles (row-major) and upsample each back to
    full size: (N, 3, H, W) → (N·factor², 3, H, W)."""
    if factor == 1:
        return images
    n, c, h, w = images.shape
    th, tw = h // factor, w // factor
    tiles = images.view(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n * factor * factor, c, th, tw)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def encode(sub_images: torch.Tensor, factor: int) -> torch.Tensor:
    """Inverse layout of `decode` for initialisation: downsample ρ² images into one."""
    if factor == 1:
        return sub_images
    total, c, h, w = sub_images.shape
    small = F.interpolate(sub_images, size=(h // factor, w // factor), mode="area")
    small = small.view(total // factor ** 2, factor, factor, c, h // factor, w // factor)
    return small.permute(0, 3, 1, 4, 2, 5).reshape(-1, c, h, w)


def round_robin_domains(source_domains: list[int], count: int) -> list[int]:
    return [source_domains[j % len(source_domains)] for j in range(count)]


def check_ipc(train: MultiDomainData, source_domains: list[int], ipc: int, factor: int) -> None:
    """Raise ConfigError before any long work if the synthetic set cannot be initialised."""
    if ipc < 1:
        raise ConfigError(f"IPC must be at least 1, got {ipc}")
    if factor < 1 or train.resolution % factor:
        raise ConfigError(f"multi-formation factor {factor} does not divide the "
                          f"resolution {train.resolution}")
    counts = train.counts()
    needed = round_robin_domains(source_domains, ipc * factor ** 2)
    for c, class_name in enumerate(train.class_names):
        for d in set(needed):
            have, want = int(counts[d, c]), needed.count(d)
            if have < want:
                raise ConfigError(
                    f"impossible IPC {ipc}: class '{class_name}' has {have} training images "
                    f"in domain '{train.domain_names[d]}', {want} needed (factor {factor})")


def init_from_real(train: MultiDomainData, source_domains: list[int], ipc: int, factor: int,
                   generator: torch.Generator) -> SyntheticSet:
    """Sub-image j of class c comes from a distinct random real image of class c in source
    domain j mod S, so every source domain contributes equally."""
    check_ipc(train, source_domains, ipc, factor)
    per_class = ipc * factor ** 2
    picks, sub_domains = [], []
    for c in range(len(train.class_names)):
        wanted = round_robin_domains(source_domains, per_class)
        chosen = {}
        for d in sorted(set(wanted)):
            pool = ((train.labels == c) & (train.domains == d)).nonzero().flatten()
            chosen[d] = iter(pool[torch.randperm(len(pool), generator=generator)].tolist())
        picks += [next(chosen[d]) for d in wanted]
        sub_domains += wanted
    sub_images = train.images[torch.tensor(picks)].to(torch.get_default_dtype()) / 255
    labels = torch.arange(len(train.class_names)).repeat_interleave(ipc)
    return SyntheticSet(encode(sub_images, factor).contiguous(), labels,
                        torch.tensor(sub_domains), factor)
