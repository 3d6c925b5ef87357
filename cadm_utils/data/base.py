"""The data every layer shares: a multi-domain image set (`MultiDomainData`), the tasks that
are views of it (leave-one-domain-out, in-domain) and the split codes.

Every data set, real or embedded, becomes a `MultiDomainData`: uint8 images of one
resolution with class labels, domain labels and a split code per image.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import DataError

TRAIN, VAL, UNLISTED = 0, 1, 2


@dataclass
class MultiDomainData:
    name: str
    images: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) int64 class index
    domains: torch.Tensor  # (N,) int64 index into domain_names
    split: torch.Tensor  # (N,) int8: TRAIN, VAL or UNLISTED
    class_names: list[str]
    domain_names: list[str]
    domain_letters: list[str]
    paths: list[str] = field(default_factory=list)  # relative file paths, empty if generated

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    def subset(self, keep: torch.Tensor) -> "MultiDomainData":
        index = keep.nonzero().flatten()
        paths = [self.paths[i] for i in index.tolist()] if self.paths else []
        return MultiDomainData(
            self.name, self.images[index], self.labels[index], self.domains[index],
            self.split[index], self.class_names, self.domain_names, self.domain_letters, paths)

    def counts(self) -> torch.Tensor:
        """(n_domains, n_classes) image counts."""
        flat = self.domains * len(self.class_names) + self.labels
        total = len(self.domain_names) * len(self.class_names)
        return torch.bincount(flat, minlength=total).view(len(self.domain_names), -1)


@dataclass
class Task:
    """One experimental setting: what distillation sees and what evaluation tests on."""

    name: str  # e.g. "ACS→P" or "in-domain"
    train: MultiDomainData  # source domains, train parts
    val: MultiDomainData  # source domains, validation parts (model selection only)
    test: MultiDomainData  # the whole target domain (or all val parts in-domain)
    source_domains: list[int]

    @property
    def n_classes(self) -> int:
        return len(self.train.class_names)

    @property
    def n_domains(self) -> int:
        return len(self.train.domain_names)


def domain_index(data: MultiDomainData, target: str) -> int:
    """Accept a domain name ('photo') or the paper's letter ('P')."""
    if target in data.domain_names:
        return data.domain_names.index(target)
    if target in data.domain_letters:
        return data.domain_letters.index(target)
    raise DataError(f"unknown domain '{target}' for {data.name}: "
                    f"expected one of {', '.join(data.domain_names)}")


def leave_one_domain_out(data: MultiDomainData, target: str) -> Task:
    target_index = domain_index(data, target)
    sources = [d for d in range(len(data.domain_names)) if d != target_index]
    is_source = data.domains != target_index
    letters = "".join(data.domain_letters[d] for d in sources)
    return Task(
        name=f"{letters}→{data.domain_letters[target_index]}",
        train=data.subset(is_source & (data.split == TRAIN)),
        val=data.subset(is_source & (data.split == VAL)),
        test=data.subset(~is_source),
        source_domains=sources,
    )


def in_domain(data: MultiDomainData) -> Task:
    """Paper Table 4: all domains are sources and targets; tested on the held-out parts."""
    return Task(
        name="in-domain",
        train=data.subset(data.split == TRAIN),
        val=data.subset(data.split == VAL),
        test=data.subset(data.split == VAL),
        source_domains=list(range(len(data.domain_names))),
    )


def make_task(data: MultiDomainData, target: str) -> Task:
    return in_domain(data) if target == "in-domain" else leave_one_domain_out(data, target)


def random_split(labels: torch.Tensor, domains: torch.Tensor, val_fraction: float,
                 seed: int) -> torch.Tensor:
    """Seeded split stratified by (domain, class): round(val_fraction·n) to validation."""
    generator = torch.Generator().manual_seed(seed)
    split = torch.full((len(labels),), TRAIN, dtype=torch.int8)
    groups = domains * (int(labels.max()) + 1) + labels
    for group in torch.unique(groups):
        members = (groups == group).nonzero().flatten()
        order = members[torch.randperm(len(members), generator=generator)]
        split[order[: round(val_fraction * len(members))]] = VAL
    return split


def summary_lines(data: MultiDomainData) -> list[str]:
    """Images per domain and class, and split sizes, as text lines."""
    counts = data.counts()
    width = max(len(c) for c in data.class_names) + 2
    header = "domain".ljust(16) + "".join(c[:width - 1].rjust(width) for c in data.class_names)
    lines = [f"{data.name}: {len(data)} images, {len(data.domain_names)} domains, "
             f"{len(data.class_names)} classes, {data.resolution}x{data.resolution} px",
             header + "total".rjust(8) + "train".rjust(8) + "val".rjust(7) + "unlisted".rjust(10)]
    for d, domain in enumerate(data.domain_names):
        in_domain_split = data.split[data.domains == d]
        row = domain[:15].ljust(16) + "".join(str(int(n)).rjust(width) for n in counts[d])
        row += str(int(counts[d].sum())).rjust(8)
        row += "".join(str(int((in_domain_split == code).sum())).rjust(w)
                       for code, w in ((TRAIN, 8), (VAL, 7), (UNLISTED, 10)))
        lines.append(row)
    return lines
