"""Channel activation statistics (paper Fig. 1(b), 3(b)) and feature embeddings (Fig. 3(a))."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .masking import activation_scores
from .models import N_BLOCKS
from .runtime import to_float


@dataclass
class ChannelActivation:
    """Mean activation score per (domain, channel) of a set of images at one block."""

    scores: np.ndarray  # (n_domains_present, C)
    domains: list[int]  # domain index of each row

    @property
    def variance(self) -> np.ndarray:
        """(C,) variance across domains: high = unstable, domain-sensitive channel."""
        return self.scores.var(axis=0)

    def sensitive_channels(self, top: int) -> np.ndarray:
        return np.argsort(-self.variance)[:top]


@torch.no_grad()
def channel_activation(model, images: torch.Tensor, domains: torch.Tensor,
                       block: int = N_BLOCKS - 1, batch_size: int = 256) -> ChannelActivation:
    """Eq. 5 scores (min-max normalised per image) of each image under its own domain's
    head row, averaged per domain. `images` uint8 or float in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    weight = model.head_weight(block)
    scores = []
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size], device)
        features = model.run_blocks(x, 0, block + 1)
        d = domains[start:start + batch_size].to(device)
        scores.append(activation_scores(features, weight, d).cpu())
    scores = torch.cat(scores)
    present = sorted(set(domains.tolist()))
    per_domain = np.stack([scores[domains == d].mean(0).numpy() for d in present])
    return ChannelActivation(per_domain, present)


@torch.no_grad()
def embeddings(model, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, D) final embeddings F(x) as numpy."""
    model.eval()
    device = next(model.parameters()).device
    out = [model.embed(to_float(images[s:s + batch_size], device)).float().cpu()
           for s in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """Seeded 2-D UMAP (umap-learn); single-threaded so that the layout is reproducible."""
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(features) - 1),
                        random_state=seed, n_jobs=1)
    return reducer.fit_transform(features)
